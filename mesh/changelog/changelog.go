package changelog

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"

	"github.com/event-mesh-broadcaster/broadcaster/config/option"
	"github.com/event-mesh-broadcaster/broadcaster/mesh"
)

// Defaults of a Log: minutes of heavy churn (a thousand changes a second for a minute), within
// a memory bound that holds whatever the entities weigh.
const (
	DefaultMaxChanges = 65536
	DefaultMaxBytes   = 64 << 20
)

// Reasons Since cannot serve a request, for the caller to branch on.
var (
	ErrOtherEpoch = errors.New("not the current epoch")
	ErrExpired    = errors.New("no longer in the log")
	ErrAhead      = errors.New("ahead of the log")
)

type options struct {
	maxChanges int
	maxBytes   int64
}

// Option configures a Log.
type Option = option.Func[options]

// WithMaxChanges keeps at most n changes after the opening batch.
func WithMaxChanges(n int) Option {
	return func(o *options) (err error) { o.maxChanges, err = option.Positive("delta log size", n); return err }
}

// WithMaxBytes keeps at most about n bytes of changes after the opening batch (at least the
// newest change, whatever its size).
func WithMaxBytes(n int64) Option {
	return func(o *options) (err error) { o.maxBytes, err = option.Positive("delta log bytes", n); return err }
}

// Log is the history of the current epoch. It is a mesh/hub Listener; readers are safe to use
// from any goroutine.
type Log struct {
	options

	mu      sync.Mutex
	epoch   string
	opening []mesh.Change // the batch that opened the epoch: meshseq 1..len(opening)
	ring    []entry       // the changes after it, oldest first, from index head
	head    int
	bytes   int64
	last    uint64        // the newest sequence (0: none)
	more    chan struct{} // closed and replaced at each append: wakes waiting readers
}

type entry struct {
	change mesh.Change
	size   int64
}

// New returns an empty log for epoch. Defaults: DefaultMaxChanges, DefaultMaxBytes.
func New(epoch string, opts ...Option) (*Log, error) {
	o := options{maxChanges: DefaultMaxChanges, maxBytes: DefaultMaxBytes}
	if err := option.Apply(&o, opts...); err != nil {
		return nil, err
	}
	return &Log{options: o, epoch: epoch, more: make(chan struct{})}, nil
}

// Append adds a batch; it is a mesh/hub Listener and does not block. A batch that opens an
// epoch replaces everything: it is kept whole as the epoch's opening, beyond the bounds.
//
// A batch that resets (a follower loading the leader's snapshot) empties the log: it then
// holds nothing before the reset's position.
func (l *Log) Append(b mesh.Batch) {
	if len(b.Changes) == 0 && !b.Resets {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if b.Resets {
		l.epoch, l.opening, l.ring, l.head, l.bytes, l.last = b.At.Epoch, nil, nil, 0, 0, b.At.Sequence
		if len(b.Changes) == 0 {
			l.wake()
			return
		}
	}
	if b.Opens {
		l.epoch, l.opening, l.ring, l.head, l.bytes = b.Changes[0].Epoch, stripped(b.Changes), nil, 0, 0
	} else {
		for _, c := range b.Changes {
			c.Previous = nil // readers get new states only; don't keep old ones alive
			e := entry{change: c, size: sizeOf(c)}
			l.ring = append(l.ring, e)
			l.bytes += e.size
		}
		l.evict()
	}
	l.last = b.Changes[len(b.Changes)-1].Sequence
	l.wake()
}

// wake wakes the readers waiting for more. l.mu is held.
func (l *Log) wake() {
	close(l.more)
	l.more = make(chan struct{})
}

func stripped(changes []mesh.Change) []mesh.Change {
	out := make([]mesh.Change, len(changes))
	for i, c := range changes {
		c.Previous = nil
		out[i] = c
	}
	return out
}

// evict drops the oldest changes beyond the bounds, keeping at least the newest.
func (l *Log) evict() {
	for n := len(l.ring) - l.head; n > 1 && (n > l.maxChanges || l.bytes > l.maxBytes); n-- {
		l.bytes -= l.ring[l.head].size
		l.ring[l.head] = entry{}
		l.head++
	}
	if l.head > len(l.ring)/2 && l.head > 64 { // reuse the front of the slice now and then
		l.ring = append(l.ring[:0], l.ring[l.head:]...)
		l.head = 0
	}
}

// sizeOf approximates the memory a change keeps alive.
func sizeOf(c mesh.Change) int64 {
	k := c.Key
	return int64(len(c.Entity)+len(k.Group)+len(k.Kind)+len(k.Namespace)+len(k.Name)+len(c.Epoch)) + 96
}

// Epoch is the current epoch.
func (l *Log) Epoch() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.epoch
}

// Head is the position of the newest change.
func (l *Log) Head() mesh.Position {
	l.mu.Lock()
	defer l.mu.Unlock()
	return mesh.Position{Epoch: l.epoch, Sequence: l.last}
}

// Opened is how many changes opened epoch (meshseq 1..n): 0 when the log holds another epoch
// or no opening.
func (l *Log) Opened(epoch string) uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	if epoch != l.epoch {
		return 0
	}
	return uint64(len(l.opening))
}

// Since returns the changes after sequence `after` of epoch, and the sequence of the last one
// (= after when there are none). It does not wait.
func (l *Log) Since(epoch string, after uint64) ([]mesh.Change, uint64, error) {
	return l.Page(epoch, after, math.MaxInt)
}

// Page is Since with at most max changes (max > 0); last is the sequence of the last one
// returned (= after when there are none).
func (l *Log) Page(epoch string, after uint64, max int) ([]mesh.Change, uint64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case epoch != l.epoch:
		return nil, 0, fmt.Errorf("epoch %q: %w (it is %q)", epoch, ErrOtherEpoch, l.epoch)
	case after > l.last:
		return nil, 0, fmt.Errorf("since %d: %w (the newest change is %d)", after, ErrAhead, l.last)
	}
	want := min(uint64(max), l.last-after)
	out, missed := l.after(after, int(want))
	if missed > 0 || uint64(len(out)) != want {
		if l.head == len(l.ring) {
			return nil, 0, fmt.Errorf("since %d: %w (the log starts at %d)", after, ErrExpired, l.last)
		}
		return nil, 0, fmt.Errorf("since %d: %w (the oldest change kept after the opening is %d)",
			after, ErrExpired, l.ring[l.head].change.Sequence)
	}
	return out, after + uint64(len(out)), nil
}

// Batch is what a reader gets: changes in order, and what they mean for its position.
type Batch struct {
	Changes []mesh.Change
	// Opens is set when the batch starts an epoch the reader was not in: what it holds of an
	// earlier epoch is stale, and the batch begins with the new epoch's opening.
	Opens bool
	// Missed counts the changes the reader fell too far behind to get: they are gone from the
	// log, and the batch goes on after them (a declared gap).
	Missed uint64
}

// Read returns up to max changes after position from, waiting until there is one or ctx ends.
// A position in another epoch (or the zero position) reads the current epoch from its start.
func (l *Log) Read(ctx context.Context, from mesh.Position, max int) (Batch, error) {
	for {
		l.mu.Lock()
		more := l.more
		b := Batch{}
		after := from.Sequence
		if from.Epoch != l.epoch {
			b.Opens, after = true, 0
		}
		if after > l.last { // a position the log never had (it was emptied): start over
			b.Opens, after = true, 0
		}
		if after < l.last {
			b.Changes, b.Missed = l.after(after, max)
		}
		l.mu.Unlock()
		if len(b.Changes) > 0 {
			return b, nil
		}
		select {
		case <-ctx.Done():
			return Batch{}, context.Cause(ctx)
		case <-more:
		}
	}
}

// after returns up to max changes after sequence after (< l.last), and how many between it and
// the first returned are gone. l.mu is held.
func (l *Log) after(after uint64, max int) ([]mesh.Change, uint64) {
	var out []mesh.Change
	if n := uint64(len(l.opening)); after < n {
		out = append(out, l.opening[after:min(n, after+uint64(max))]...)
		after += uint64(len(out))
	}
	var missed uint64
	if len(out) < max && l.head < len(l.ring) {
		first := l.ring[l.head].change.Sequence
		if after+1 < first {
			if len(out) > 0 {
				return out, 0 // the gap starts the next batch
			}
			missed, after = first-after-1, first-1
		}
		start := l.head + int(after+1-first)
		for i := start; i < len(l.ring) && len(out) < max; i++ {
			out = append(out, l.ring[i].change)
		}
	}
	return out, missed
}
