package queue

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/event-mesh-broadcaster/broadcaster/config/option"
	"github.com/event-mesh-broadcaster/broadcaster/mesh"
	"github.com/event-mesh-broadcaster/broadcaster/mesh/hub"
	"github.com/event-mesh-broadcaster/broadcaster/transports"
)

// DefaultCapacity is the default bound of a queue, in changes.
const DefaultCapacity = 10000

// Queue feeds one Publisher from a bounded buffer.
type Queue struct {
	name      string
	publisher transports.Publisher
	capacity  int
	log       *slog.Logger

	mu        sync.Mutex
	pending   []mesh.Change
	reconcile bool // an epoch opened: reconcile after delivering what is pending
	wake      chan struct{}

	delivered, dropped, rejected atomic.Uint64
}

type options struct {
	capacity int
	log      *slog.Logger
}

// Option configures a Queue.
type Option = option.Func[options]

// WithCapacity bounds the queue to n changes.
func WithCapacity(n int) Option {
	return func(o *options) error {
		if n < 1 {
			return option.Invalid("queue size", "%d: want at least 1", n)
		}
		o.capacity = n
		return nil
	}
}

// WithLogger logs drops, rejections and failures.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) (err error) { o.log, err = option.Logger(l); return err }
}

// New returns a queue in front of p; name labels its logs. Defaults: DefaultCapacity, no
// logging.
func New(name string, p transports.Publisher, opts ...Option) (*Queue, error) {
	o := options{capacity: DefaultCapacity, log: option.Discard()}
	if err := option.Apply(&o, opts...); err != nil {
		return nil, fmt.Errorf("queue %s: %w", name, err)
	}
	if p == nil {
		return nil, option.Invalid("publisher", "queue %s: nil", name)
	}
	return &Queue{name: name, publisher: p, capacity: o.capacity, log: o.log, wake: make(chan struct{}, 1)}, nil
}

// Enqueue adds a batch without blocking; it is a mesh/hub Listener. On overflow the oldest
// queued changes are dropped. A batch that opens an epoch makes a Reconciler reconcile once it
// is delivered (or dropped).
func (q *Queue) Enqueue(b hub.Batch) {
	q.mu.Lock()
	q.pending = append(q.pending, b.Changes...)
	if _, ok := q.publisher.(transports.Reconciler); ok && b.Opens {
		q.reconcile = true
	}
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
		batch, reconcile := q.take()
		if len(batch) == 0 && !reconcile {
			select {
			case <-ctx.Done():
				return
			case <-q.wake:
				continue
			}
		}
		if !q.deliver(ctx, batch, reconcile) {
			return
		}
	}
}

// deliver publishes batch, then reconciles when asked; false when ctx ended first, with what
// was left undone put back for Flush.
func (q *Queue) deliver(ctx context.Context, batch []mesh.Change, reconcile bool) bool {
	if len(batch) > 0 && !q.publish(ctx, batch) {
		q.requeue(batch, reconcile)
		return false
	}
	if !reconcile {
		return true
	}
	err := q.publisher.(transports.Reconciler).Reconcile(ctx)
	switch {
	case err == nil:
	case ctx.Err() != nil:
		q.requeue(nil, true)
		return false
	default:
		q.log.Warn("transport could not drop the state of deleted entities", "transport", q.name, "err", err)
	}
	return true
}

// Flush delivers what is still queued within ctx (a shutdown deadline) and returns an error
// saying what could not be delivered.
func (q *Queue) Flush(ctx context.Context) error {
	for {
		batch, reconcile := q.take()
		if len(batch) == 0 && !reconcile {
			return nil
		}
		if !q.deliver(ctx, batch, reconcile) {
			return fmt.Errorf("transport %s: %d changes not delivered before the deadline: %w", q.name, q.Len(), ctx.Err())
		}
	}
}

func (q *Queue) take() ([]mesh.Change, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	batch, reconcile := q.pending, q.reconcile
	q.pending, q.reconcile = nil, false
	return batch, reconcile
}

// requeue puts an undelivered batch back in front, within capacity.
func (q *Queue) requeue(batch []mesh.Change, reconcile bool) {
	q.mu.Lock()
	q.reconcile = q.reconcile || reconcile
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
