package hub

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"

	"github.com/event-mesh-broadcaster/broadcaster/config/option"
	"github.com/event-mesh-broadcaster/broadcaster/mesh"
	"github.com/event-mesh-broadcaster/broadcaster/mesh/engine"
	"github.com/event-mesh-broadcaster/broadcaster/mesh/lineage"
	"github.com/prometheus/client_golang/prometheus"
)

// Listener receives each batch of changes, in order. It must not block.
type Listener func(mesh.Batch)

// Hub owns an engine for concurrent use.
type Hub struct {
	log     *slog.Logger
	metrics *hubMetrics // nil without WithMetrics

	mu        sync.Mutex
	engine    *engine.Engine
	listeners []listening
	lastID    int
	listed    func() bool
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

// New returns a hub around e. listed reports whether the source has delivered its initial
// listing; until then the hub is not Ready. Defaults: no logging.
func New(e *engine.Engine, listed func() bool, opts ...Option) (*Hub, error) {
	o := options{log: option.Discard()}
	if err := option.Apply(&o, opts...); err != nil {
		return nil, err
	}
	if e == nil || listed == nil {
		return nil, option.Invalid("hub", "an engine and a listed function are required")
	}
	h := &Hub{engine: e, listed: listed, log: o.log}
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

// Listed reports whether the engine holds the source's whole initial listing: only then may
// this replica lead.
func (h *Hub) Listed() bool { return h.listed() }

// Ready reports whether the hub serves a whole mesh: the source's initial listing is applied,
// or, on a follower, the leader's snapshot is loaded.
func (h *Hub) Ready() bool {
	h.mu.Lock()
	following, mirrored := h.following, h.mirror != nil
	h.mu.Unlock()
	if following {
		return mirrored
	}
	return h.listed()
}

// Snapshot returns the mesh served (a follower's: the leader's); it is cheap and consistent.
func (h *Hub) Snapshot() mesh.State {
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

// Lineage answers q from the engine's live graph (a follower's engine watches the same
// cluster as its leader), showing only the namespaces visible admits (nil: all). The engine
// is held for the query, which touches only the part of the graph it answers about.
func (h *Hub) Lineage(q lineage.Query, visible func(namespace string) bool) (lineage.Answer, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	ans, err := lineage.Ask(h.engine.LineageGraph(), q, visible)
	ans.Position = h.served().Position()
	return ans, err
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
	h.broadcast(mesh.Batch{Resets: true, At: m.Position()})
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
	h.broadcast(mesh.Batch{Changes: []mesh.Change{c}})
	return nil
}

// Advance moves the served sequence space to p without a change.
func (h *Hub) Advance(p mesh.Position) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.following && h.mirror != nil && p.Epoch == h.mirror.Position().Epoch && p.Sequence > h.mirror.Position().Sequence {
		h.mirror.Advance(p)
		h.broadcast(mesh.Batch{Resets: true, At: p})
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
		h.broadcast(mesh.Batch{Resets: true, At: from})
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

// Apply applies a source's batch of object changes under the lock and emits the net entity
// changes as one batch; it is the hub's side of source.Sink. A whole listing (Replace) opens
// the epoch with one added change per entity.
func (h *Hub) Apply(b engine.ObjectBatch) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, p := range b.Upserts {
		h.countObjects(p.Ref())
	}
	if !b.Replace {
		h.countObjects(b.Deletes...)
	}
	changes, problems := h.engine.Apply(b)
	h.countProblems(problems)
	h.logProblems(problems)
	h.emit(changes)
}

// logProblems logs what the engine had to ignore, one line per object.
func (h *Hub) logProblems(problems error) {
	if problems == nil {
		return
	}
	each := []error{problems}
	if joined, ok := problems.(interface{ Unwrap() []error }); ok {
		each = joined.Unwrap()
	}
	for _, p := range each {
		var attrs []any
		if op, ok := p.(*engine.ObjectProblem); ok {
			attrs = append(attrs, "object", op.Ref.String())
		}
		h.log.Warn("object partly ignored", append(attrs, "problems", p.Error())...)
	}
}

// emit hands the engine's changes to the listeners, unless a follower serves another space.
func (h *Hub) emit(changes []mesh.Change) {
	if len(changes) == 0 || h.following {
		return
	}
	b := mesh.Batch{Changes: changes, Opens: !h.opened}
	h.opened = true
	h.broadcast(b)
}

func (h *Hub) broadcast(b mesh.Batch) {
	if h.stopped {
		return
	}
	for _, l := range h.listeners {
		l.fn(b)
	}
}

// LogChanges is a listener that logs one readable line per change.
func LogChanges(log *slog.Logger) Listener {
	return func(b mesh.Batch) {
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
			for _, k := range mesh.EntityKinds() { // the rest of the graph, where there is any
				if !k.Upstream() && counts[k] > 0 {
					attrs = append(attrs, strings.ToLower(k.List()), counts[k])
				}
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
