package kube

import (
	"cmp"
	"context"
	"errors"
	"io"
	"sync/atomic"

	"github.com/event-mesh-broadcaster/broadcaster/mesh/engine"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/version"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"
)

// watchSpec is how one kind is watched; a kind whose spec changes is rewatched.
type watchSpec struct {
	resource   schema.GroupVersionResource
	namespaced bool
	selector   string
}

// Why a kind cannot be watched (the reason label of broadcaster_source_kind_degraded).
const (
	reasonForbidden = "forbidden"
	reasonNotServed = "not_served"
)

// kindWatch is the informers of one kind: one per namespace in scope, or one for all.
type kindWatch struct {
	gk     engine.GroupKind
	spec   watchSpec
	ctx    context.Context
	cancel context.CancelFunc

	informers []cache.SharedIndexInformer
	regs      []cache.ResourceEventHandlerRegistration

	listed    bool        // its initial listing was logged (s.mu)
	forbidden atomic.Bool // the last list or watch was refused by RBAC
	missing   atomic.Bool // the last list or watch found the resource not served (404)
	failing   atomic.Bool // the last list or watch failed for another reason
}

func (s *Source) newWatch(gk engine.GroupKind, spec watchSpec) *kindWatch {
	ctx, cancel := context.WithCancel(s.ctx)
	w := &kindWatch{gk: gk, spec: spec, ctx: ctx, cancel: cancel}
	namespaces := s.namespaces
	if !spec.namespaced {
		namespaces = []string{""}
	}
	var example runtime.Object = &unstructured.Unstructured{}
	handler := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { s.deliver(w, obj, false) },
		UpdateFunc: func(_, obj any) { s.deliver(w, obj, false) },
		DeleteFunc: func(obj any) { s.deliver(w, obj, true) },
	}
	for _, ns := range namespaces {
		inf := cache.NewSharedIndexInformerWithOptions(s.listWatch(w, ns), example, cache.SharedIndexInformerOptions{})
		_ = inf.SetTransform(w.transform) // fails only once started
		_ = inf.SetWatchErrorHandlerWithContext(func(context.Context, *cache.Reflector, error) {
			// Classified where list and watch are called (listWatch); expiry and closed
			// streams are routine and the reflector recovers from them.
		})
		reg, _ := inf.AddEventHandler(handler) // fails only once stopped
		w.informers = append(w.informers, inf)
		w.regs = append(w.regs, reg)
		s.running.Add(1)
		go func() {
			defer s.running.Done()
			inf.RunWithContext(ctx)
		}()
	}
	return w
}

// synced reports whether every informer's initial listing reached the handler.
func (w *kindWatch) synced() bool {
	for _, r := range w.regs {
		if !r.HasSynced() {
			return false
		}
	}
	return true
}

// settled reports whether the watch no longer holds up the initial listing: it has listed,
// or it is refused and degrades on its own.
func (w *kindWatch) settled() bool { return w.synced() || w.forbidden.Load() || w.missing.Load() }

// keys lists the objects the informers hold now.
func (w *kindWatch) keys() map[nsName]struct{} {
	out := map[nsName]struct{}{}
	for _, inf := range w.informers {
		for _, obj := range inf.GetStore().List() {
			switch o := obj.(type) {
			case *engine.Parsed:
				out[nsName{o.Ref().Namespace, o.Ref().Name}] = struct{}{}
			case metav1.Object:
				out[nsName{o.GetNamespace(), o.GetName()}] = struct{}{}
			}
		}
	}
	return out
}

// listWatch lists and watches one namespace (or all), noting refusals as they happen.
func (s *Source) listWatch(w *kindWatch, ns string) *cache.ListWatch {
	tweak := func(o metav1.ListOptions) metav1.ListOptions {
		o.LabelSelector = w.spec.selector
		return o
	}
	list := func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
		return s.dynamic.Resource(w.spec.resource).Namespace(ns).List(ctx, tweak(o))
	}
	watchFn := func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
		return s.dynamic.Resource(w.spec.resource).Namespace(ns).Watch(ctx, tweak(o))
	}
	return &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			obj, err := list(ctx, o)
			s.observe(w, ns, err)
			return obj, err
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			wi, err := watchFn(ctx, o)
			s.observe(w, ns, err)
			return wi, err
		},
	}
}

// observe logs and counts the transitions of a watch between working, refused and failing.
func (s *Source) observe(w *kindWatch, ns string, err error) {
	if w.ctx.Err() != nil {
		return // stopped: its errors are expected and no longer matter
	}
	attrs := []any{"kind", kindName(w.gk), "resource", w.spec.resource.String()}
	if ns != "" {
		attrs = append(attrs, "namespace", ns)
	}
	switch {
	case err == nil:
		if w.forbidden.Swap(false) {
			s.degraded.DeleteLabelValues(w.gk.Group, w.gk.Kind, reasonForbidden)
			s.log.Info("kind recovered: permission granted", attrs...)
		}
		if w.missing.Swap(false) {
			s.degraded.DeleteLabelValues(w.gk.Group, w.gk.Kind, reasonNotServed)
			s.log.Info("kind recovered: served again", attrs...)
		}
		if w.failing.Swap(false) {
			s.log.Info("watch reconnected", attrs...)
		}
	case apierrors.IsForbidden(err):
		if !w.forbidden.Swap(true) {
			s.degraded.WithLabelValues(w.gk.Group, w.gk.Kind, reasonForbidden).Set(1)
			s.log.Error("kind degraded: forbidden to list or watch it; the rest of the mesh carries on and this kind recovers once RBAC allows it",
				append(attrs, "err", err)...)
		}
	case apierrors.IsNotFound(err):
		// Discovery or a CRD said the kind exists, the API server says not (any more).
		if !w.missing.Swap(true) {
			s.degraded.WithLabelValues(w.gk.Group, w.gk.Kind, reasonNotServed).Set(1)
			s.log.Warn("kind degraded: not served by the API server; retrying", append(attrs, "err", err)...)
		}
	case errors.Is(err, io.EOF), apierrors.IsResourceExpired(err), apierrors.IsGone(err):
	default:
		if !w.failing.Swap(true) {
			s.log.Warn("watch failing; retrying", append(attrs, "err", err)...)
		}
	}
}

const lastApplied = "kubectl.kubernetes.io/last-applied-configuration"

// transform reads each object for the mesh before the informer stores it, so the informer
// keeps the small parsed form (whose fields the engine shares) and the decoded object is let
// go at once. CRDs, which the source itself reads, stay whole but for their schemas, status,
// managed fields and kubectl's last-applied copy.
func (w *kindWatch) transform(obj any) (any, error) {
	switch o := obj.(type) {
	case *unstructured.Unstructured:
		if w.gk == gkCRD {
			unstructured.RemoveNestedField(o.Object, "metadata", "managedFields")
			// kubectl apply keeps a whole copy of the object here; nobody reads it.
			unstructured.RemoveNestedField(o.Object, "metadata", "annotations", lastApplied)
			if len(o.GetAnnotations()) == 0 {
				unstructured.RemoveNestedField(o.Object, "metadata", "annotations")
			}
			unstructured.RemoveNestedField(o.Object, "status")
			trimCRD(o)
			return o, nil
		}
		return engine.Parse(o), nil
	}
	return obj, nil // tombstones, and objects already read, pass through
}

// trimCRD keeps group, names, scope and each version's name and serving flags: the schemas
// are most of a CRD's size and the mesh never reads them.
func trimCRD(u *unstructured.Unstructured) {
	versions, _, _ := unstructured.NestedSlice(u.Object, "spec", "versions")
	kept := make([]any, 0, len(versions))
	for _, v := range versions {
		m, ok := v.(map[string]any)
		if !ok {
			continue
		}
		kept = append(kept, map[string]any{"name": m["name"], "served": m["served"], "storage": m["storage"]})
	}
	spec, _, _ := unstructured.NestedMap(u.Object, "spec")
	u.Object["spec"] = map[string]any{
		"group": spec["group"], "names": spec["names"], "scope": spec["scope"], "versions": kept,
	}
}

// crdInfo is what a CRD tells the source about its kind.
type crdInfo struct {
	gk         engine.GroupKind
	resource   schema.GroupVersionResource // at the storage version (else the newest served)
	namespaced bool
	// roleLabelled: a label makes the kind a channel or a source, watched whole.
	roleLabelled bool
}

func parseCRD(u *unstructured.Unstructured) crdInfo {
	group, _, _ := unstructured.NestedString(u.Object, "spec", "group")
	kind, _, _ := unstructured.NestedString(u.Object, "spec", "names", "kind")
	plural, _, _ := unstructured.NestedString(u.Object, "spec", "names", "plural")
	scope, _, _ := unstructured.NestedString(u.Object, "spec", "scope")
	versions, _, _ := unstructured.NestedSlice(u.Object, "spec", "versions")
	best, stored := "", ""
	for _, v := range versions {
		m, _ := v.(map[string]any)
		name, _ := m["name"].(string)
		served, _ := m["served"].(bool)
		if !served || name == "" {
			continue
		}
		if storage, _ := m["storage"].(bool); storage {
			stored = name
		}
		if best == "" || version.CompareKubeAwareVersionStrings(name, best) > 0 {
			best = name
		}
	}
	// Read at the version objects are stored in: the API server then converts nothing, so no
	// conversion webhook sits in the read path, and no field of the stored shape is lost to a
	// conversion or to pruning at another version's schema.
	best = cmp.Or(stored, best)
	if group == "" || kind == "" || plural == "" || best == "" {
		return crdInfo{} // not (yet) usable: as if absent
	}
	labelled := false
	for _, label := range roleLabels {
		labelled = labelled || u.GetLabels()[label] == "true"
	}
	return crdInfo{
		gk:           engine.GroupKind{Group: group, Kind: kind},
		resource:     schema.GroupVersionResource{Group: group, Version: best, Resource: plural},
		namespaced:   scope == "Namespaced",
		roleLabelled: labelled,
	}
}
