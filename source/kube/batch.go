package kube

import (
	"context"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/event-mesh-broadcaster/broadcaster/mesh/engine"
	"github.com/event-mesh-broadcaster/broadcaster/source"
)

// Live changes that arrive together (a relist after a watch expired, a kubectl apply of many
// objects, a namespace deleted) are handed over as one batch, each object's latest change
// only, so the mesh emits only the net entity changes: never a consumedBy emptied just before
// its EventType's delete. A burst ends when no change has come for batchQuiet, or at
// batchMax: the latency a lone change pays is batchQuiet.
const (
	batchQuiet = 2 * time.Millisecond
	batchMax   = 50 * time.Millisecond
)

// changeBatch gathers the changes of a burst.
type changeBatch struct {
	order  []engine.ObjectRef // first appearance
	latest map[engine.ObjectRef]pendingChange
}

type pendingChange struct {
	u       *unstructured.Unstructured
	deleted bool
}

func (b *changeBatch) put(u *unstructured.Unstructured, deleted bool) {
	if b.latest == nil {
		b.latest = map[engine.ObjectRef]pendingChange{}
	}
	ref := engine.RefOf(u)
	if _, seen := b.latest[ref]; !seen {
		b.order = append(b.order, ref)
	}
	b.latest[ref] = pendingChange{u, deleted}
}

// take empties the batch: the objects whose latest change is an update, and those deleted.
func (b *changeBatch) take() (upserts, deletes []*unstructured.Unstructured) {
	for _, ref := range b.order {
		c := b.latest[ref]
		if c.deleted {
			deletes = append(deletes, c.u)
		} else {
			upserts = append(upserts, c.u)
		}
	}
	b.order, b.latest = nil, nil
	return upserts, deletes
}

// flushBursts hands each burst of live changes to h as one batch until ctx ends.
func (s *Source) flushBursts(ctx context.Context, h source.BatchHandler) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.more:
		}
		deadline := time.Now().Add(batchMax)
		for quiet := time.NewTimer(batchQuiet); ; quiet.Reset(batchQuiet) {
			select {
			case <-ctx.Done():
				quiet.Stop()
				return
			case <-s.more:
				quiet.Stop()
				if time.Now().Before(deadline) {
					continue
				}
			case <-quiet.C:
			}
			break
		}
		s.mu.Lock()
		if upserts, deletes := s.batch.take(); len(upserts)+len(deletes) > 0 {
			h.Apply(upserts, deletes)
		}
		s.mu.Unlock()
	}
}
