package kube

import (
	"context"
	"time"

	"github.com/event-mesh-broadcaster/broadcaster/mesh/engine"
)

// Live changes that arrive together (a relist after a watch expired, a kubectl apply of many
// objects, a namespace deleted) are sent as one batch, each object's latest change
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

// pendingChange is an object's latest state in the burst; nil: deleted.
type pendingChange struct{ p *engine.Parsed }

func (b *changeBatch) put(ref engine.ObjectRef, p *engine.Parsed) {
	if b.latest == nil {
		b.latest = map[engine.ObjectRef]pendingChange{}
	}
	if _, seen := b.latest[ref]; !seen {
		b.order = append(b.order, ref)
	}
	b.latest[ref] = pendingChange{p}
}

// take empties the burst: the objects whose latest change is an update, and those deleted.
func (b *changeBatch) take() engine.ObjectBatch {
	var out engine.ObjectBatch
	for _, ref := range b.order {
		if c := b.latest[ref]; c.p == nil {
			out.Deletes = append(out.Deletes, ref)
		} else {
			out.Upserts = append(out.Upserts, c.p)
		}
	}
	b.order, b.latest = nil, nil
	return out
}

// flushBursts sends each burst of live changes to the sink as one batch until ctx ends.
func (s *Source) flushBursts(ctx context.Context) {
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
		if b := s.batch.take(); b.Len() > 0 {
			s.sink.Apply(b)
		}
		s.mu.Unlock()
	}
}
