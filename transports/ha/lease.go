package ha

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	coordinationclient "k8s.io/client-go/kubernetes/typed/coordination/v1"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// AnnotationLeaderURL is the Lease annotation where the leader says where it serves: the
// followers replicate its sequence space from there.
const AnnotationLeaderURL = "eventmesh.knative.dev/leader-url"

// leaseLock is client-go's Lease lock plus one annotation: the holder's URL. (client-go's
// LeaseLock keeps the Lease it last read to itself, so it cannot carry an annotation.)
type leaseLock struct {
	client    coordinationclient.LeasesGetter
	namespace string
	name      string
	identity  string
	url       string
	// observed hears the holder and its URL each time the Lease is read ("" when none).
	observed func(holder, url string)

	mu    sync.Mutex
	lease *coordinationv1.Lease // as last read or written
}

var _ resourcelock.Interface = (*leaseLock)(nil)

func (l *leaseLock) Get(ctx context.Context) (*resourcelock.LeaderElectionRecord, []byte, error) {
	lease, err := l.client.Leases(l.namespace).Get(ctx, l.name, metav1.GetOptions{})
	if err != nil {
		return nil, nil, err
	}
	l.keep(lease)
	record := resourcelock.LeaseSpecToLeaderElectionRecord(&lease.Spec)
	if l.observed != nil {
		l.observed(record.HolderIdentity, lease.Annotations[AnnotationLeaderURL])
	}
	raw, err := json.Marshal(*record)
	if err != nil {
		return nil, nil, err
	}
	return record, raw, nil
}

func (l *leaseLock) Create(ctx context.Context, ler resourcelock.LeaderElectionRecord) error {
	lease := &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Name: l.name, Namespace: l.namespace},
		Spec:       resourcelock.LeaderElectionRecordToLeaseSpec(&ler),
	}
	l.annotate(lease, ler)
	created, err := l.client.Leases(l.namespace).Create(ctx, lease, metav1.CreateOptions{})
	if err != nil {
		return err
	}
	l.keep(created)
	return nil
}

func (l *leaseLock) Update(ctx context.Context, ler resourcelock.LeaderElectionRecord) error {
	l.mu.Lock()
	if l.lease == nil {
		l.mu.Unlock()
		return errors.New("lease not read yet")
	}
	lease := l.lease.DeepCopy()
	l.mu.Unlock()
	lease.Spec = resourcelock.LeaderElectionRecordToLeaseSpec(&ler)
	l.annotate(lease, ler)
	updated, err := l.client.Leases(l.namespace).Update(ctx, lease, metav1.UpdateOptions{})
	if err != nil {
		return err
	}
	l.keep(updated)
	return nil
}

// annotate writes this replica's URL while it holds the lease, and removes it on release.
func (l *leaseLock) annotate(lease *coordinationv1.Lease, ler resourcelock.LeaderElectionRecord) {
	if ler.HolderIdentity != l.identity {
		delete(lease.Annotations, AnnotationLeaderURL)
		return
	}
	if lease.Annotations == nil {
		lease.Annotations = map[string]string{}
	}
	lease.Annotations[AnnotationLeaderURL] = l.url
}

func (l *leaseLock) keep(lease *coordinationv1.Lease) {
	l.mu.Lock()
	l.lease = lease
	l.mu.Unlock()
}

func (l *leaseLock) RecordEvent(string) {}

func (l *leaseLock) Identity() string { return l.identity }

func (l *leaseLock) Describe() string { return fmt.Sprintf("%s/%s", l.namespace, l.name) }
