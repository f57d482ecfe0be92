package queue

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/event-mesh-broadcaster/broadcaster/mesh"
	"github.com/event-mesh-broadcaster/broadcaster/transports"
)

// Queue feeds one Publisher from a bounded buffer.
type Queue struct {
	name      string
	publisher transports.Publisher
	capacity  int
	log       *slog.Logger

	mu      sync.Mutex
	pending []mesh.Change
	wake    chan struct{}

	delivered, dropped, rejected atomic.Uint64
}

// New returns a queue of capacity changes in front of p. name labels logs.
func New(name string, p transports.Publisher, capacity int, log *slog.Logger) (*Queue, error) {
	if capacity < 1 {
		return nil, fmt.Errorf("queue %s: capacity %d: want at least 1", name, capacity)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Queue{name: name, publisher: p, capacity: capacity, log: log, wake: make(chan struct{}, 1)}, nil
}

// Enqueue adds changes without blocking; it is a mesh/hub Listener. On overflow the oldest
// queued changes are dropped.
func (q *Queue) Enqueue(changes []mesh.Change) {
	q.mu.Lock()
	q.pending = append(q.pending, changes...)
	var lost []mesh.Change
	if over := len(q.pending) - q.capacity; over > 0 {
		lost = q.pending[:over]
		q.pending = append(q.pending[:0:0], q.pending[over:]...)
	}
	q.mu.Unlock()
	if len(lost) > 0 {
		q.dropped.Add(uint64(len(lost)))
		q.log.Warn("transport queue full; dropped the oldest changes (consumers will see a meshseq gap)",
			"transport", q.name, "dropped", len(lost), "first", lost[0].Sequence, "last", lost[len(lost)-1].Sequence)
	}
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// Stats counts changes delivered, dropped for lack of room, and rejected by the destination.
func (q *Queue) Stats() (delivered, dropped, rejected uint64) {
	return q.delivered.Load(), q.dropped.Load(), q.rejected.Load()
}

// Name labels the transport in logs.
func (q *Queue) Name() string { return q.name }

// Close closes the publisher behind the queue.
func (q *Queue) Close(ctx context.Context) error { return q.publisher.Close(ctx) }

// Len is the number of changes waiting.
func (q *Queue) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.pending)
}

// Run delivers queued changes until ctx ends. Changes still queued then stay for Flush.
func (q *Queue) Run(ctx context.Context) {
	for {
		batch := q.take()
		if len(batch) == 0 {
			select {
			case <-ctx.Done():
				return
			case <-q.wake:
				continue
			}
		}
		if !q.publish(ctx, batch) {
			q.requeue(batch)
			return
		}
	}
}

// Flush delivers what is still queued within ctx (a shutdown deadline) and returns an error
// saying what could not be delivered.
func (q *Queue) Flush(ctx context.Context) error {
	for {
		batch := q.take()
		if len(batch) == 0 {
			return nil
		}
		if !q.publish(ctx, batch) {
			q.requeue(batch)
			left := q.Len()
			return fmt.Errorf("transport %s: %d changes not delivered before the deadline (meshseq %d..): %w",
				q.name, left, batch[0].Sequence, ctx.Err())
		}
	}
}

func (q *Queue) take() []mesh.Change {
	q.mu.Lock()
	defer q.mu.Unlock()
	batch := q.pending
	q.pending = nil
	return batch
}

// requeue puts an undelivered batch back in front, within capacity.
func (q *Queue) requeue(batch []mesh.Change) {
	q.mu.Lock()
	q.pending = append(batch, q.pending...)
	over := len(q.pending) - q.capacity
	if over > 0 {
		q.pending = q.pending[over:]
	}
	q.mu.Unlock()
	if over > 0 {
		q.dropped.Add(uint64(over))
	}
}

// publish reports false when ctx ended before the batch was delivered.
func (q *Queue) publish(ctx context.Context, batch []mesh.Change) bool {
	err := q.publisher.Publish(ctx, batch)
	switch {
	case err == nil:
		q.delivered.Add(uint64(len(batch)))
	case errors.Is(err, transports.ErrRejected):
		n := uint64(countRejected(err))
		q.rejected.Add(n)
		q.delivered.Add(uint64(len(batch)) - n)
		q.log.Error("destination rejected changes; skipped (consumers will see a meshseq gap)", "transport", q.name, "err", err)
	case ctx.Err() != nil:
		return false
	default:
		q.log.Error("transport failed; changes lost", "transport", q.name, "changes", len(batch), "err", err)
		q.dropped.Add(uint64(len(batch)))
	}
	return true
}

// countRejected counts the ErrRejected errors joined in err.
func countRejected(err error) int {
	if joined, ok := err.(interface{ Unwrap() []error }); ok {
		n := 0
		for _, e := range joined.Unwrap() {
			n += countRejected(e)
		}
		return n
	}
	if errors.Is(err, transports.ErrRejected) {
		return 1
	}
	return 0
}
