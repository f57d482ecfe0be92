package hub

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/tools/cache"

	"github.com/event-mesh-broadcaster/broadcaster/config/option"
	"github.com/event-mesh-broadcaster/broadcaster/mesh"
	"github.com/event-mesh-broadcaster/broadcaster/mesh/engine"
	"github.com/prometheus/client_golang/prometheus"
)

// Batch is the changes one source event caused, in meshseq order.
type Batch struct {
	Changes []mesh.Change
	// Opens marks the first batch of an epoch. An epoch opens on the source's initial listing
	// or when a leader finds no sequence space to continue (Lead), so this batch then holds
	// the whole mesh as added changes from meshseq 1; what a destination kept of earlier
	// epochs and the mesh lacks is stale.
	Opens bool
	// Resets says the sequence space is now at At, with no history before it that this replica
	// holds: a follower loaded the leader's snapshot, or a new leader skipped numbers after a
	// crash. Listeners drop what they kept of it; Changes, if any, follow At.
	Resets bool
	At     mesh.Position
}

// Listener receives each batch of changes, in order. It must not block.
type Listener func(Batch)

// Hub owns an engine for concurrent use.
type Hub struct {
	log     *slog.Logger
	metrics *hubMetrics // nil without WithMetrics

	mu        sync.Mutex
	engine    *engine.Engine
	listeners []listening
	lastID    int
	synced    func() bool
	opened    bool // the engine's epoch has emitted its first batch
	stopped   bool // nothing is emitted any more

	// A follower serves another replica's sequence space (mirror, nil until its first
	// snapshot) and keeps the engine's changes to itself. transports/ha makes the hub follow
	// and lead (Follow, Lead); without it the hub leads from the start.
	following bool
	mirror    *engine.Mirror
}

type options struct {
	log     *slog.Logger
	metrics prometheus.Registerer
}

// Option configures a Hub.
type Option = option.Func[options]

// WithLogger logs the parts of objects the engine had to ignore.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) (err error) { o.log, err = option.Logger(l); return err }
}

// New returns a hub around e. synced reports whether the source has delivered its initial
// listing; until then the hub is not Ready. Defaults: no logging.
func New(e *engine.Engine, synced func() bool, opts ...Option) (*Hub, error) {
	o := options{log: option.Discard()}
	if err := option.Apply(&o, opts...); err != nil {
		return nil, err
	}
	if e == nil || synced == nil {
		return nil, option.Invalid("hub", "an engine and a synced function are required")
	}
	h := &Hub{engine: e, synced: synced, log: o.log}
	if o.metrics != nil {
		if err := h.registerMetrics(o.metrics); err != nil {
			return nil, err
		}
	}
	return h, nil
}

type listening struct {
	id int
	fn Listener
}

// Listen adds listeners for every later batch of changes; remove takes them off again.
func (h *Hub) Listen(listeners ...Listener) (remove func()) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.add(listeners)
}

// add adds listeners under h.mu and returns what removes them.
func (h *Hub) add(listeners []Listener) (remove func()) {
	ids := map[int]bool{}
	for _, l := range listeners {
		h.lastID++
		h.listeners = append(h.listeners, listening{h.lastID, l})
		ids[h.lastID] = true
	}
	return func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.listeners = slices.DeleteFunc(h.listeners, func(l listening) bool { return ids[l.id] })
	}
}

// Synced reports whether the engine holds the source's whole initial listing: only then may
// this replica lead.
func (h *Hub) Synced() bool { return h.synced() }

// Ready reports whether the hub serves a whole mesh: the source's initial listing is applied,
// or, on a follower, the leader's snapshot is loaded.
func (h *Hub) Ready() bool {
	h.mu.Lock()
	following, mirrored := h.following, h.mirror != nil
	h.mu.Unlock()
	if following {
		return mirrored
	}
	return h.synced()
}

// Snapshot returns the mesh served (a follower's: the leader's); it is cheap and consistent.
func (h *Hub) Snapshot() engine.Snapshot {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.served()
}

// served is the mesh served. h.mu is held.
func (h *Hub) served() engine.Snapshot {
	if h.following {
		if h.mirror == nil {
			return engine.Snapshot{}
		}
		// The leader's entities; what this replica's engine knows of Backstage ids scopes them
		// for namespaced callers.
		return h.mirror.Snapshot().WithIDsOf(h.engine.Snapshot())
	}
	return h.engine.Snapshot()
}

// Position is where the served sequence space is.
func (h *Hub) Position() mesh.Position { return h.Snapshot().Position() }

// Follow makes the hub a follower: from now on it serves what Load, Replicate and Advance
// bring, and keeps the engine's changes to itself (the engine stays warm for taking over).
// A hub made to follow before it emitted anything serves nothing until Load; a leader stepping
// down keeps serving what it published until the next leader's stream says otherwise.
func (h *Hub) Follow() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.following {
		return
	}
	h.following = true
	h.mirror = nil
	if h.opened {
		h.mirror = engine.MirrorOf(h.engine.Snapshot())
	}
}

// ErrNotFollowing refuses replication on a hub that leads.
var ErrNotFollowing = errors.New("the hub is not following")

// Load replaces the served mesh with the leader's snapshot.
func (h *Hub) Load(s mesh.RawSnapshot) error {
	m, err := engine.NewMirror(s)
	if err != nil {
		return err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.following {
		return ErrNotFollowing
	}
	h.mirror = m
	h.broadcast(Batch{Resets: true, At: m.Position()})
	return nil
}

// Replicate applies the leader's next change to the served mesh.
func (h *Hub) Replicate(c mesh.Change) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case !h.following:
		return ErrNotFollowing
	case h.mirror == nil:
		return fmt.Errorf("change %s before a snapshot", c)
	}
	if err := h.mirror.Apply(c); err != nil {
		return err
	}
	h.broadcast(Batch{Changes: []mesh.Change{c}})
	return nil
}

// Advance moves the served sequence space to p without a change.
func (h *Hub) Advance(p mesh.Position) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.following && h.mirror != nil && p.Epoch == h.mirror.Position().Epoch && p.Sequence > h.mirror.Position().Sequence {
		h.mirror.Advance(p)
		h.broadcast(Batch{Resets: true, At: p})
	}
}

// Lead makes the hub number the engine's changes and emit them. A follower holding another
// replica's sequence space continues it (engine.Engine.Continue, skipping skip numbers): the
// first batch holds only what differs between what was published and the engine's mesh.
// Otherwise, or when the space has used half of the sequence range, it opens epoch with the
// whole mesh. from is where the served space was before the first batch of the term (zero
// when an epoch opens).
func (h *Hub) Lead(epoch string, skip uint64) (from mesh.Position, continued bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.following {
		return h.engine.Snapshot().Position(), true
	}
	h.following = false
	mirror := h.mirror
	h.mirror = nil
	if mirror != nil && mirror.Position().Sequence+skip > mesh.MaxSequence/2 {
		mirror = nil // half the sequence range is used: a term is a good time for a new epoch
	}
	if mirror == nil {
		h.opened = false
		h.emit(h.engine.Restart(epoch))
		return mesh.Position{}, false
	}
	changes := h.engine.Continue(mirror.Snapshot(), skip)
	h.opened = true
	from = mirror.Position()
	if skip > 0 {
		from.Sequence += skip
		h.broadcast(Batch{Resets: true, At: from})
	}
	h.emit(changes)
	return from, true
}

// Stop ends the hub's output: later changes are applied but never emitted, so what a
// stopping leader has emitted is final (it drains, and tells followers its last sequence).
func (h *Hub) Stop() mesh.Position {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.stopped = true
	return h.served().Position()
}

// OnAdd applies a new object.
func (h *Hub) OnAdd(obj any, _ bool) { h.upsert(obj) }

// OnUpdate applies a changed object.
func (h *Hub) OnUpdate(_, obj any) { h.upsert(obj) }

// OnDelete applies a deletion, including one only learnt of by a relist.
func (h *Hub) OnDelete(obj any) {
	if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = tomb.Obj
	}
	p, ok := parsed(obj)
	if !ok {
		h.log.Error("hub: deleted object of unexpected type ignored", "type", typeName(obj))
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.countObjects(p.Ref())
	h.emit(h.engine.Delete(p.Ref()))
}

// parsed is an object as sources deliver it (read for the engine) or whole (read here).
func parsed(obj any) (*engine.Parsed, bool) {
	switch o := obj.(type) {
	case *engine.Parsed:
		return o, true
	case *unstructured.Unstructured:
		return engine.Parse(o), true
	}
	return nil, false
}

// Replace applies a whole listing as one batch: objects the hub holds that the list lacks are
// deleted. The initial listing through Replace makes the epoch open with one added event per
// entity.
func (h *Hub) Replace(objs []*engine.Parsed) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, p := range objs {
		h.countObjects(p.Ref())
	}
	changes, problems := h.engine.ReplaceParsed(objs)
	h.countProblems(problems)
	h.logProblems(problems)
	h.emit(changes)
}

// Apply applies deletions and upserts as one batch: only the net entity changes are emitted.
func (h *Hub) Apply(upserts []*engine.Parsed, deletes []engine.ObjectRef) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, p := range upserts {
		h.countObjects(p.Ref())
	}
	h.countObjects(deletes...)
	changes, problems := h.engine.ApplyParsed(upserts, deletes)
	h.countProblems(problems)
	h.logProblems(problems)
	h.emit(changes)
}

// logProblems logs what the engine had to ignore, one line per object.
func (h *Hub) logProblems(problems error) {
	if problems == nil {
		return
	}
	if joined, ok := problems.(interface{ Unwrap() []error }); ok {
		for _, p := range joined.Unwrap() {
			h.log.Warn("object partly ignored", "problems", p.Error())
		}
		return
	}
	h.log.Warn("object partly ignored", "problems", problems.Error())
}

func (h *Hub) upsert(obj any) {
	p, ok := parsed(obj) // before the lock: filter expressions can be costly to read
	if !ok {
		h.log.Error("hub: object of unexpected type ignored", "type", typeName(obj))
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.countObjects(p.Ref())
	changes, problems := h.engine.UpsertParsed(p)
	h.countProblems(problems)
	if problems != nil {
		h.log.Warn("object partly ignored", "object", p.Ref().String(), "problems", problems.Error())
	}
	h.emit(changes)
}

// emit hands the engine's changes to the listeners, unless a follower serves another space.
func (h *Hub) emit(changes []mesh.Change) {
	if len(changes) == 0 || h.following {
		return
	}
	b := Batch{Changes: changes, Opens: !h.opened}
	h.opened = true
	h.broadcast(b)
}

func (h *Hub) broadcast(b Batch) {
	if h.stopped {
		return
	}
	for _, l := range h.listeners {
		l.fn(b)
	}
}

// LogChanges is a listener that logs one readable line per change.
func LogChanges(log *slog.Logger) Listener {
	return func(b Batch) {
		level := slog.LevelInfo
		if b.Opens && len(b.Changes) > 0 {
			// The batch opening an epoch is the whole mesh: one summary line, the entities
			// themselves only at debug.
			counts := map[mesh.EntityKind]int{}
			for _, c := range b.Changes {
				counts[c.Kind]++
			}
			attrs := []any{"epoch", b.Changes[0].Epoch, "entities", len(b.Changes)}
			for _, k := range []mesh.EntityKind{mesh.KindBroker, mesh.KindEventType, mesh.KindSubscribable, mesh.KindSource} {
				attrs = append(attrs, k.String()+"s", counts[k])
			}
			log.Info("mesh loaded", attrs...)
			level = slog.LevelDebug
		}
		if !log.Enabled(context.Background(), level) {
			return // the diffs cost more than the rest of a change
		}
		for _, c := range b.Changes {
			attrs := []any{"epoch", c.Epoch, "seq", c.Sequence, "key", c.Key}
			if s := c.Summary(); s != "" {
				attrs = append(attrs, "diff", s)
			}
			log.Log(context.Background(), level, c.Kind.String()+" "+c.Op.String(), attrs...)
		}
	}
}

func typeName(v any) string { return fmt.Sprintf("%T", v) }
