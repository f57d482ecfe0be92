package consumer

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/event-mesh-broadcaster/broadcaster/codec"
	"github.com/event-mesh-broadcaster/broadcaster/mesh"
)

// EntityID names an entity in a replica.
type EntityID struct {
	Kind mesh.EntityKind
	Key  mesh.Key
}

// Replica is a consumer's copy of the mesh. It is safe for concurrent use.
type Replica struct {
	snapshots Snapshotter

	mu       sync.Mutex
	epoch    string
	seq      uint64
	entities map[EntityID]json.RawMessage
	resyncs  int
	catchUps int
	loaded   chan struct{} // closed by the first whole mesh: a snapshot, or a listing placed
	listing  listing       // the latest states held while cold (Hold), until Listed
	// placed: the position came from a listing (Listed), which no snapshot has confirmed. A
	// listing can lack a state whose write a broadcaster retried after a later one (a lost
	// acknowledgement); the change then arrives at or before the position, where a replica
	// placed by a snapshot would drop it as seen.
	placed bool
}

// listing is what a cold replica learnt from the latest states it holds: the epoch they share
// and the highest sequence among them.
type listing struct {
	epoch string
	seq   uint64
	mixed bool // states of more than one epoch: no position can be given to them
}

// NewReplica returns an empty replica that resyncs from snapshots.
func NewReplica(s Snapshotter) *Replica {
	return &Replica{snapshots: s, entities: map[EntityID]json.RawMessage{}, loaded: make(chan struct{})}
}

// ErrSnapshotBehind means snapshots kept lagging behind the events received.
var ErrSnapshotBehind = errors.New("snapshot behind the events")

// Apply applies one change: in order it is applied, seen before it is dropped, and after a gap
// or in a new epoch the replica resyncs from a snapshot first.
func (r *Replica) Apply(ctx context.Context, c mesh.Change) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if c.Epoch == r.epoch && c.Sequence <= r.seq {
		if r.placed && !r.holds(c) {
			// A state the listing lacked, or one a later change replaced: a snapshot tells.
			return r.resync(ctx, c)
		}
		return nil // a duplicate (at-least-once delivery) or already in the snapshot
	}
	if c.Epoch == r.epoch && c.Sequence > r.seq+1 && r.catchUp(ctx, c) {
		return nil
	}
	if c.Epoch != r.epoch || c.Sequence != r.seq+1 {
		if err := r.resync(ctx, c); err != nil {
			return err
		}
		if c.Sequence <= r.seq {
			return nil
		}
	}
	r.apply(c)
	return nil
}

// ApplyEvent decodes and applies a mesh-delta CloudEvent.
func (r *Replica) ApplyEvent(ctx context.Context, ev event.Event) error {
	c, err := codec.Decode(ev)
	if err != nil {
		return err
	}
	return r.Apply(ctx, c)
}

// ApplyStructured decodes and applies a structured-mode event (MQTT and NATS payloads). An
// empty payload (an MQTT topic cleared after a delete) is ignored.
func (r *Replica) ApplyStructured(ctx context.Context, payload []byte) error {
	if len(payload) == 0 {
		return nil
	}
	c, err := codec.DecodeStructured(payload)
	if err != nil {
		return err
	}
	return r.Apply(ctx, c)
}

func (r *Replica) apply(c mesh.Change) {
	id := EntityID{c.Kind, c.Key}
	switch {
	case !c.Kind.Known(): // a newer broadcaster's kind: skipped, its sequence counted
	case c.Op == mesh.OpDeleted:
		delete(r.entities, id)
	default:
		r.entities[id] = c.Entity
	}
	r.seq = c.Sequence
}

// catchUp fills a gap from the delta log when the snapshotter offers one, a page at a time;
// false when it could not (no log, the changes expired, or they have not reached it yet), so
// resync.
func (r *Replica) catchUp(ctx context.Context, c mesh.Change) bool {
	catcher, ok := r.snapshots.(Catcher)
	if !ok {
		return false
	}
	for r.seq+1 < c.Sequence {
		missed, err := catcher.Deltas(ctx, r.epoch, r.seq)
		if err != nil || len(missed) == 0 {
			return false
		}
		for _, m := range missed {
			if m.Epoch != r.epoch || m.Sequence != r.seq+1 {
				return false // not what was asked for: start over from a snapshot
			}
			if m.Sequence >= c.Sequence {
				break
			}
			r.apply(m)
		}
	}
	r.apply(c)
	r.catchUps++
	return true
}

// snapshotTries bounds how often resync asks for a snapshot that has the event's epoch and
// reaches the event (several seconds in all).
const snapshotTries = 21

// resync replaces the state with a snapshot that includes at least everything before c,
// retrying while the snapshot lags behind (the event may arrive before the snapshot has it).
func (r *Replica) resync(ctx context.Context, c mesh.Change) error {
	s, err := backoff.Retry(ctx, func() (mesh.Snapshot, error) {
		s, err := r.snapshots.Snapshot(ctx)
		switch {
		case errors.Is(err, ErrUnavailable):
			return s, err // loading, or not in the leader's sequence space yet
		case err != nil:
			return s, backoff.Permanent(err)
		case s.Epoch != c.Epoch || s.Sequence+1 < c.Sequence:
			return s, fmt.Errorf("%w: event %s-%d, snapshot %s-%d", ErrSnapshotBehind, c.Epoch, c.Sequence, s.Epoch, s.Sequence)
		}
		return s, nil
	}, backoff.WithBackOff(&backoff.ExponentialBackOff{InitialInterval: 50 * time.Millisecond, RandomizationFactor: 0.5,
		Multiplier: 2, MaxInterval: 500 * time.Millisecond}), backoff.WithMaxTries(snapshotTries), backoff.WithMaxElapsedTime(0))
	if err != nil {
		return err
	}
	r.load(s)
	return nil
}

// holds reports whether the replica is as c leaves its entity: deleted, or with c's state.
func (r *Replica) holds(c mesh.Change) bool {
	if !c.Kind.Known() {
		return true // not kept
	}
	state, ok := r.entities[EntityID{c.Kind, c.Key}]
	if c.Op == mesh.OpDeleted {
		return !ok
	}
	return ok && bytes.Equal(state, c.Entity)
}

func (r *Replica) load(s mesh.Snapshot) {
	r.entities = entitiesOf(s.Mesh)
	r.epoch, r.seq = s.Epoch, s.Sequence
	r.listing, r.placed = listing{}, false
	r.resyncs++
	r.markLoaded()
}

func (r *Replica) markLoaded() {
	select {
	case <-r.loaded:
	default:
		close(r.loaded)
	}
}

// Loaded is closed once the replica holds a whole mesh (its first snapshot, or a listing of
// latest states placed by Listed), for consumers that must not answer from an empty replica.
func (r *Replica) Loaded() <-chan struct{} { return r.loaded }

// Hold takes c as an entity's latest state, as a NATS KV bucket's entry or an MQTT retained
// message holds it (natsconsumer.Follow's Entity), into a cold replica: one that has no
// position yet. Listed then places what it holds. A replica with a position ignores it: its
// changes bring everything after that position. A deleted state (which a listing does not
// show) is ignored; a state of a kind this version does not know counts for Listed only.
func (r *Replica) Hold(c mesh.Change) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.epoch != "" || c.Op == mesh.OpDeleted {
		return
	}
	switch {
	case r.listing.epoch == "":
		r.listing.epoch = c.Epoch
	case r.listing.epoch != c.Epoch:
		r.listing.mixed = true
	}
	r.listing.seq = max(r.listing.seq, c.Sequence)
	if c.Kind.Known() {
		r.entities[EntityID{c.Kind, c.Key}] = c.Entity
	}
}

// Listed ends a listing of latest states (Hold). A broadcaster writes its bucket in meshseq
// order, so a whole listing of one epoch is its mesh as of the highest sequence shown (the
// deletes after it included): the replica takes that position, and the changes after it
// apply in order. Until a snapshot confirms it, a change at or before that position that the
// replica does not already show (a state whose write was retried after a later one) takes a
// snapshot instead of being dropped. States of two epochs (listed while a new epoch was being written) cannot be
// placed: the replica keeps them without a position, and its first change resyncs it.
func (r *Replica) Listed() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.epoch != "" || r.listing.epoch == "" || r.listing.mixed {
		return
	}
	r.epoch, r.seq = r.listing.epoch, r.listing.seq
	r.listing, r.placed = listing{}, true
	r.markLoaded()
}

// Resync takes a snapshot now (a consumer's cold start).
func (r *Replica) Resync(ctx context.Context) error {
	s, err := r.snapshots.Snapshot(ctx)
	if err != nil {
		return err
	}
	r.Load(s)
	return nil
}

func entitiesOf(m mesh.Mesh) map[EntityID]json.RawMessage {
	out := map[EntityID]json.RawMessage{}
	m.Each(func(kind mesh.EntityKind, key mesh.Key, v any) {
		data, _ := json.Marshal(v) // the mesh types marshal the same bytes the broadcaster sent
		out[EntityID{kind, key}] = data
	})
	return out
}

// Position is the epoch and sequence the replica is at.
func (r *Replica) Position() (epoch string, sequence uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.epoch, r.seq
}

// Resyncs counts the snapshots taken.
func (r *Replica) Resyncs() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.resyncs
}

// CatchUps counts the gaps filled from the delta log.
func (r *Replica) CatchUps() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.catchUps
}

// Entities is a copy of the replica's entities.
func (r *Replica) Entities() map[EntityID]json.RawMessage {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[EntityID]json.RawMessage, len(r.entities))
	for k, v := range r.entities {
		out[k] = v
	}
	return out
}

// Mesh is the replica's upstream lists as an EventMesh (sorted like GET /v1/getEventMesh),
// each entity with its Graph (EventMesh.UpstreamOnly leaves it out).
func (r *Replica) Mesh() (mesh.EventMesh, error) {
	whole, err := r.Whole()
	return whole.EventMesh, err
}

// Whole is the replica as a Mesh: every kind, sorted like GET /v1/mesh.
func (r *Replica) Whole() (mesh.Mesh, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := mesh.Mesh{EventMesh: mesh.EventMesh{Brokers: []mesh.Broker{}, EventTypes: []mesh.EventType{}, Sources: []mesh.Source{},
		Subscribables: []mesh.Subscribable{}}}
	ids := make([]EntityID, 0, len(r.entities))
	for id := range r.entities {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b EntityID) int { return a.Key.Compare(b.Key) })
	for _, id := range ids {
		var err error
		data := r.entities[id]
		switch id.Kind {
		case mesh.KindBroker:
			err = appendDecoded(data, &m.Brokers)
		case mesh.KindEventType:
			err = appendDecoded(data, &m.EventTypes)
		case mesh.KindSource:
			err = appendDecoded(data, &m.Sources)
		case mesh.KindSubscribable:
			err = appendDecoded(data, &m.Subscribables)
		default:
			if list := m.Elements(id.Kind); list != nil {
				err = appendDecoded(data, list)
			}
		}
		if err != nil {
			return mesh.Mesh{}, fmt.Errorf("entity %s: %w", id.Key, err)
		}
	}
	m.Sort()
	return m, nil
}

func appendDecoded[T any](data []byte, list *[]T) error {
	var v T
	if err := json.Unmarshal(data, &v); err != nil {
		return err
	}
	*list = append(*list, v)
	return nil
}

// Load replaces the replica's state with a snapshot.
func (r *Replica) Load(s mesh.Snapshot) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.load(s)
}

// Watch follows GET /v1/watch at baseURL (Server-Sent Events) into the replica until ctx
// ends, reconnecting with Last-Event-ID so that a short break costs no snapshot. client should
// have no overall timeout (nil: one without).
func (r *Replica) Watch(ctx context.Context, baseURL, token string, client *http.Client) error {
	epoch, seq := r.Position()
	return Follow(ctx, baseURL, token, client, Stream{
		Epoch:    epoch,
		Sequence: seq,
		Snapshot: func(s mesh.Snapshot) error { r.Load(s); return nil },
		Delta:    func(payload []byte) error { return r.ApplyStructured(ctx, payload) },
		Position: func(epoch string, seq uint64) error { r.Advance(epoch, seq); return nil },
	})
}

// Advance records that the replica's view is complete up to seq of epoch: the changes in
// between are not part of it (a broadcaster filtering by namespace says so with a position
// event). It does nothing for another epoch or an older position.
func (r *Replica) Advance(epoch string, seq uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if epoch == r.epoch && seq > r.seq {
		r.seq = seq
	}
}
