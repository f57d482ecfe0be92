package kubeauth

import (
	"context"
	"log/slog"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/event-mesh-broadcaster/broadcaster/config/option"
)

// RoleBindings narrows which namespaces a SubjectAccessReview is asked about. RBAC grants an
// identity anything in one namespace only through a RoleBinding there naming the identity,
// one of its groups, or (for a ServiceAccount) the account itself; cluster-wide grants are
// asked about once, cluster-wide. So on a mesh of 1,000 namespaces a caller bound in two of
// them costs two reviews, not 1,000. Another authorizer (a webhook) granting access without a
// RoleBinding is not seen: such a caller is shown less, never more.
type RoleBindings struct {
	informer cache.SharedIndexInformer
	log      *slog.Logger
}

const bySubject = "subject"

// NewRoleBindings watches the RoleBindings of the cluster behind client (their subjects only).
func NewRoleBindings(client kubernetes.Interface, log *slog.Logger) (*RoleBindings, error) {
	if _, err := option.Required("kubernetes client", client); err != nil {
		return nil, err
	}
	l, err := option.Logger(log)
	if err != nil {
		return nil, err
	}
	factory := informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithTransform(keepSubjects))
	informer := factory.Rbac().V1().RoleBindings().Informer()
	if err := informer.AddIndexers(cache.Indexers{bySubject: subjectKeys}); err != nil {
		return nil, err
	}
	return &RoleBindings{informer: informer, log: l}, nil
}

// keepSubjects drops all but what the index reads.
func keepSubjects(obj any) (any, error) {
	rb, ok := obj.(*rbacv1.RoleBinding)
	if !ok {
		return obj, nil
	}
	return &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: rb.Name, Namespace: rb.Namespace,
		ResourceVersion: rb.ResourceVersion}, Subjects: rb.Subjects}, nil
}

// subjectKeys names a RoleBinding's subjects the way identityKeys names a caller.
func subjectKeys(obj any) ([]string, error) {
	rb, ok := obj.(*rbacv1.RoleBinding)
	if !ok {
		return nil, nil
	}
	keys := make([]string, 0, len(rb.Subjects))
	for _, s := range rb.Subjects {
		switch s.Kind {
		case rbacv1.UserKind:
			keys = append(keys, "user:"+s.Name)
		case rbacv1.GroupKind:
			keys = append(keys, "group:"+s.Name)
		case rbacv1.ServiceAccountKind:
			ns := s.Namespace
			if ns == "" {
				ns = rb.Namespace
			}
			keys = append(keys, "user:system:serviceaccount:"+ns+":"+s.Name)
		}
	}
	return keys, nil
}

func identityKeys(who authenticationv1.UserInfo) []string {
	keys := []string{"user:" + who.Username}
	for _, g := range who.Groups {
		keys = append(keys, "group:"+g)
	}
	return keys
}

// Run watches until ctx ends. A watch the API server refuses (no RBAC for rolebindings) only
// costs speed: every namespace is then asked about.
func (r *RoleBindings) Run(ctx context.Context) error {
	go r.informer.Run(ctx.Done())
	synced := make(chan bool, 1)
	go func() { synced <- cache.WaitForCacheSync(ctx.Done(), r.informer.HasSynced) }()
	select {
	case ok := <-synced:
		if ok {
			r.log.Info("access reviews narrowed by RoleBindings")
		}
	case <-time.After(time.Minute):
		r.log.Warn("RoleBindings not listed within a minute (may the broadcaster list rolebindings?): " +
			"until they are, a caller allowed only some namespaces costs one access review per namespace of the mesh")
	}
	<-ctx.Done()
	return nil
}

// candidates returns the namespaces where a RoleBinding names who; ok is false until the
// RoleBindings are listed.
func (r *RoleBindings) candidates(who authenticationv1.UserInfo) (namespaces map[string]bool, ok bool) {
	if !r.informer.HasSynced() {
		return nil, false
	}
	namespaces = map[string]bool{}
	for _, key := range identityKeys(who) {
		objs, err := r.informer.GetIndexer().ByIndex(bySubject, key)
		if err != nil {
			return nil, false
		}
		for _, o := range objs {
			namespaces[o.(*rbacv1.RoleBinding).Namespace] = true
		}
	}
	return namespaces, true
}

// WithRoleBindings asks SubjectAccessReviews only about namespaces where a RoleBinding names
// the caller (see RoleBindings); the others are known to be refused.
func WithRoleBindings(r *RoleBindings) Option {
	return func(o *options) (err error) { o.roleBindings, err = option.Required("role bindings", r); return err }
}
