package resync

import (
	"errors"
	"fmt"
	"sync"

	"github.com/event-mesh-broadcaster/broadcaster/config/option"
	"github.com/event-mesh-broadcaster/broadcaster/mesh"
	"github.com/event-mesh-broadcaster/broadcaster/mesh/hub"
)

// Log keeps the most recent changes of one epoch, so a consumer that missed a few can catch up
// (GET /v1/deltas) instead of taking a whole snapshot. It is bounded: the oldest changes go.
type Log struct {
	mu     sync.RWMutex
	epoch  string
	ring   []mesh.Change
	oldest int    // index in ring of the oldest change
	size   int    // changes held
	last   uint64 // sequence of the newest change appended (0: none yet)
}

// DefaultLogSize holds minutes of heavy churn (a thousand changes a second for a minute).
const DefaultLogSize = 65536

// Reasons a catch-up cannot be served, for the caller to branch on.
var (
	ErrOtherEpoch = errors.New("not the current epoch")
	ErrExpired    = errors.New("no longer in the log")
	ErrAhead      = errors.New("ahead of the log")
)

type logOptions struct{ capacity int }

// LogOption configures a Log.
type LogOption = option.Func[logOptions]

// WithLogCapacity keeps the n most recent changes.
func WithLogCapacity(n int) LogOption {
	return func(o *logOptions) error {
		if n < 1 {
			return option.Invalid("delta log size", "%d: want at least 1", n)
		}
		o.capacity = n
		return nil
	}
}

// NewLog returns an empty log for epoch. Defaults: DefaultLogSize changes.
func NewLog(epoch string, opts ...LogOption) (*Log, error) {
	o := logOptions{capacity: DefaultLogSize}
	if err := option.Apply(&o, opts...); err != nil {
		return nil, err
	}
	return &Log{epoch: epoch, ring: make([]mesh.Change, o.capacity)}, nil
}

// Append adds a batch of changes; it is a mesh/hub Listener and does not block. A batch that
// opens an epoch empties the log and switches to that epoch.
func (l *Log) Append(b hub.Batch) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if b.Opens && len(b.Changes) > 0 {
		l.epoch, l.oldest, l.size, l.last = b.Changes[0].Epoch, 0, 0, 0
		clear(l.ring)
	}
	for _, c := range b.Changes {
		c.Previous = nil // consumers get new states only; don't keep old ones alive
		i := (l.oldest + l.size) % len(l.ring)
		if l.size == len(l.ring) {
			l.oldest = (l.oldest + 1) % len(l.ring)
		} else {
			l.size++
		}
		l.ring[i] = c
		l.last = c.Sequence
	}
}

// Since returns the changes after sequence `after` of epoch, and the sequence of the last one
// (= after when there are none).
func (l *Log) Since(epoch string, after uint64) ([]mesh.Change, uint64, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	switch {
	case epoch != l.epoch:
		return nil, 0, fmt.Errorf("epoch %q: %w (it is %q)", epoch, ErrOtherEpoch, l.epoch)
	case after > l.last:
		return nil, 0, fmt.Errorf("since %d: %w (the newest change is %d)", after, ErrAhead, l.last)
	case after == l.last:
		return nil, after, nil
	}
	first := l.last - uint64(l.size) + 1
	if after+1 < first {
		return nil, 0, fmt.Errorf("since %d: %w (the oldest change kept is %d)", after, ErrExpired, first)
	}
	n := int(l.last - after)
	out := make([]mesh.Change, n)
	start := (l.oldest + l.size - n) % len(l.ring)
	for i := range out {
		out[i] = l.ring[(start+i)%len(l.ring)]
	}
	return out, l.last, nil
}

// Epoch is the epoch the log holds.
func (l *Log) Epoch() string {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.epoch
}
