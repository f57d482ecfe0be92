package natsconsumer

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/event-mesh-broadcaster/broadcaster/codec"
	"github.com/event-mesh-broadcaster/broadcaster/codec/consumer"
	"github.com/event-mesh-broadcaster/broadcaster/mesh"
)

// DefaultListTimeout bounds the wait for a KV bucket (finding it, then each of its entries)
// when Stream.ListTimeout is zero.
const DefaultListTimeout = 10 * time.Second

// ErrInvalidStream means a Stream lacks what Follow needs.
var ErrInvalidStream = errors.New("natsconsumer: invalid stream")

// Stream says where a broadcaster publishes on NATS and what Follow does with it.
type Stream struct {
	// Prefix is the broadcaster's subject prefix (its --nats-subject-prefix,
	// "knative.eventmesh" by default): the changes arrive on <Prefix>.>. Required.
	Prefix string
	// Cluster, when set, follows only the broadcaster of that cluster (its events.cluster):
	// the changes on <Prefix>.<Cluster>.> and the Bucket's keys <Cluster>.>. Empty follows
	// every broadcaster sharing the prefix and the bucket; each change names its cluster
	// (mesh.Change.Cluster).
	Cluster string
	// Bucket, when set, is the KV bucket of the mesh's latest states (the broadcaster's
	// --nats-kv-bucket; by default the prefix with dots as underscores, "knative_eventmesh").
	// Follow lists it into Entity before it passes on any change. Empty: changes only.
	Bucket string
	// ListTimeout bounds the wait for Bucket: to find it and start listing it, then for each
	// next entry (zero: DefaultListTimeout). It does not bound the whole listing, whose time
	// grows with the bucket: 500,000 entities take tens of seconds (docs/benchmarks.md).
	ListTimeout time.Duration
	// Entity receives each entity of Bucket: the change that gave it its latest state.
	// Required with Bucket.
	Entity func(mesh.Change) error
	// Listed, when set, is called once Bucket has been listed whole, every entry taken by
	// Entity, before Change receives anything (a replica places its listing then:
	// consumer.Fleet.Listed). A listing that failed or skipped an entry is not whole: Listed
	// is not called, and what was listed stays unplaced.
	Listed func()
	// Change receives every change published once Follow has subscribed, in order, except
	// those the listing already showed (the same entity at the same or a later sequence of
	// the same epoch) among the changes read before the listing ended: a copy that comes
	// later (a publish retried, a route slower than the bucket's) is passed on, and a
	// consumer.Replica drops it by its sequence. Required.
	Change func(mesh.Change) error
	// OnError, when set, hears what Follow skipped and went on without: a message or a KV
	// entry that is not a mesh-delta event or that Entity or Change refused (a
	// *consumer.MessageError), and a bucket it could not list (a *ListError; only the changes
	// follow then).
	OnError func(error)
}

// ListError is a KV bucket Follow could not list.
type ListError struct {
	Bucket string
	Err    error
}

func (e *ListError) Error() string { return fmt.Sprintf("KV bucket %s: %v", e.Bucket, e.Err) }

func (e *ListError) Unwrap() error { return e.Err }

// shownID names an entity of one cluster in one epoch: broadcasters of several clusters share
// a bucket, and a listed sequence says nothing about another epoch's (a broadcaster that
// restarted numbers from 1 again).
type shownID struct {
	cluster, epoch string
	id             consumer.EntityID
}

func shownOf(c mesh.Change) shownID {
	return shownID{c.Cluster, c.Epoch, consumer.EntityID{Kind: c.Kind, Key: c.Key}}
}

// held is a change that arrived while the bucket was being listed.
type held struct {
	subject string
	change  mesh.Change
}

// Follow subscribes to the changes under s.Prefix on nc, lists s.Bucket into s.Entity while
// holding the changes back, then passes them to s.Change until ctx ends; it returns ctx's
// error then, or the error of the subscription. The connection stays the caller's, and so
// do its reconnects (nats.go's options).
func Follow(ctx context.Context, nc *nats.Conn, s Stream) error {
	switch {
	case s.Prefix == "":
		return fmt.Errorf("%w: no Prefix", ErrInvalidStream)
	case s.Change == nil:
		return fmt.Errorf("%w: no Change", ErrInvalidStream)
	case s.Bucket != "" && s.Entity == nil:
		return fmt.Errorf("%w: a Bucket and no Entity", ErrInvalidStream)
	}
	subject := s.Prefix + ".>"
	if s.Cluster != "" {
		if err := mesh.CheckCluster(s.Cluster); err != nil {
			return fmt.Errorf("%w: Cluster %w", ErrInvalidStream, err)
		}
		subject = s.Prefix + "." + s.Cluster + ".>"
	}
	// Changes are taken from the subjects from now on, and held back until the bucket's
	// entities are listed: then those the bucket already showed are dropped.
	var mu sync.Mutex
	var pending []held
	listing, shown := s.Bucket != "", map[shownID]uint64{}
	deliver := func(subject string, c mesh.Change) {
		if seq, ok := shown[shownOf(c)]; ok && c.Sequence <= seq {
			return
		}
		if err := s.Change(c); err != nil {
			s.report(&consumer.MessageError{Source: subject, Err: err})
		}
	}
	sub, err := nc.Subscribe(subject, func(m *nats.Msg) {
		c, err := codec.DecodeStructured(m.Data)
		if err != nil {
			s.report(&consumer.MessageError{Source: m.Subject, Err: err})
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if listing {
			pending = append(pending, held{m.Subject, c})
			return
		}
		deliver(m.Subject, c)
	})
	if err != nil {
		return err
	}
	defer sub.Unsubscribe()
	if s.Bucket != "" {
		whole, err := s.list(ctx, nc, shown)
		if err != nil {
			s.report(&ListError{Bucket: s.Bucket, Err: err})
		} else if whole && s.Listed != nil {
			s.Listed()
		}
		mu.Lock()
		listing = false
		for _, h := range pending {
			deliver(h.subject, h.change)
		}
		pending = nil
		mu.Unlock()
		// What the listing showed filters only the changes read before it ended (a change's
		// message comes before its KV entry); once those are handled (nats.go's barrier runs
		// after every message already read), it is let go: at 500,000 entities it weighed half
		// as much as a Fleet of them.
		if err := nc.Barrier(func() { mu.Lock(); shown = nil; mu.Unlock() }); err != nil {
			return err
		}
	}
	<-ctx.Done()
	return ctx.Err()
}

// list passes every entity of the bucket to s.Entity, noting each one's sequence in shown;
// whole is false when an entry was skipped.
func (s Stream) list(ctx context.Context, nc *nats.Conn, shown map[shownID]uint64) (whole bool, err error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return false, err
	}
	timeout := s.ListTimeout
	if timeout <= 0 {
		timeout = DefaultListTimeout
	}
	// The watch lives as long as the context it was made with, so that context lasts the
	// whole listing; a timer bounds finding the bucket and starting the watch.
	listing, stop := context.WithCancel(ctx)
	defer stop()
	late := time.AfterFunc(timeout, stop)
	keys := ">"
	if s.Cluster != "" {
		keys = s.Cluster + ".>"
	}
	var w jetstream.KeyWatcher
	kv, err := js.KeyValue(listing, s.Bucket)
	if err == nil {
		w, err = kv.Watch(listing, keys, jetstream.IgnoreDeletes())
	}
	if !late.Stop() && ctx.Err() == nil {
		err = fmt.Errorf("the listing did not start within %v: %w", timeout, context.DeadlineExceeded)
	}
	if err != nil {
		return false, err // a watch made meanwhile ends with listing
	}
	defer w.Stop()
	idle := time.NewTimer(timeout)
	defer idle.Stop()
	epochs := map[string]string{} // one copy of each epoch's name for every shown entity
	whole = true
	for {
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case <-idle.C:
			return false, fmt.Errorf("no entry for %v: %w", timeout, context.DeadlineExceeded)
		case entry, open := <-w.Updates():
			switch {
			case !open:
				return false, errors.New("the watch ended before the listing did")
			case entry == nil:
				return whole, nil // every entity listed
			}
			idle.Reset(timeout)
			source := "KV " + entry.Key()
			c, err := codec.DecodeStructured(entry.Value())
			if err != nil {
				s.report(&consumer.MessageError{Source: source, Err: err})
				whole = false
				continue
			}
			if epoch, ok := epochs[c.Epoch]; ok {
				c.Epoch = epoch
			} else {
				epochs[c.Epoch] = c.Epoch
			}
			shown[shownOf(c)] = c.Sequence
			if err := s.Entity(c); err != nil {
				s.report(&consumer.MessageError{Source: source, Err: err})
				whole = false
			}
		}
	}
}

func (s Stream) report(err error) {
	if s.OnError != nil {
		s.OnError(err)
	}
}
