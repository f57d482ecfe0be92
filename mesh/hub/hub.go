package hub

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/tools/cache"

	"github.com/event-mesh-broadcaster/broadcaster/config/option"
	"github.com/event-mesh-broadcaster/broadcaster/mesh"
	"github.com/event-mesh-broadcaster/broadcaster/mesh/engine"
)

// Batch is the changes one source event caused, in meshseq order.
type Batch struct {
	Changes []mesh.Change
	// Opens marks the first batch of an epoch. An epoch opens on the source's initial listing
	// or on a Restart, so this batch then holds the whole mesh as added changes from meshseq 1;
	// what a destination kept of earlier epochs and the mesh lacks is stale.
	Opens bool
}

// Listener receives each batch of changes, in order. It must not block.
type Listener func(Batch)

// Hub owns an engine for concurrent use.
type Hub struct {
	log *slog.Logger

	mu        sync.Mutex
	engine    *engine.Engine
	listeners []listening
	lastID    int
	synced    func() bool
	opened    bool // the engine's epoch has emitted its first batch
}

type options struct{ log *slog.Logger }

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
	return &Hub{engine: e, synced: synced, log: o.log}, nil
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

// Restart opens a new epoch (engine.Engine.Restart) and emits the whole mesh as its first
// changes. Listeners given here are added first, under the same lock, so they receive that
// whole batch and every later one; remove takes them off again.
func (h *Hub) Restart(epoch string, listeners ...Listener) (remove func()) {
	h.mu.Lock()
	defer h.mu.Unlock()
	remove = h.add(listeners)
	h.opened = false
	h.emit(h.engine.Restart(epoch))
	return remove
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

// Ready reports whether the mesh is complete (the source's initial listing is applied).
func (h *Hub) Ready() bool { return h.synced() }

// Snapshot returns the current mesh; it is cheap and consistent.
func (h *Hub) Snapshot() engine.Snapshot {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.engine.Snapshot()
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
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		h.log.Error("hub: deleted object of unexpected type ignored", "type", typeName(obj))
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.emit(h.engine.Delete(engine.RefOf(u)))
}

// Replace applies a whole listing as one batch: objects the hub holds that the list lacks are
// deleted. The initial listing through Replace makes the epoch open with one added event per
// entity.
func (h *Hub) Replace(objs []*unstructured.Unstructured) {
	h.mu.Lock()
	defer h.mu.Unlock()
	changes, problems := h.engine.Replace(objs)
	h.logProblems(problems)
	h.emit(changes)
}

// Apply applies deletions and upserts as one batch: only the net entity changes are emitted.
func (h *Hub) Apply(upserts, deletes []*unstructured.Unstructured) {
	refs := make([]engine.ObjectRef, len(deletes))
	for i, u := range deletes {
		refs[i] = engine.RefOf(u)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	changes, problems := h.engine.Apply(upserts, refs)
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
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		h.log.Error("hub: object of unexpected type ignored", "type", typeName(obj))
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	changes, problems := h.engine.Upsert(u)
	if problems != nil {
		h.log.Warn("object partly ignored", "object", engine.RefOf(u).String(), "problems", problems.Error())
	}
	h.emit(changes)
}

func (h *Hub) emit(changes []mesh.Change) {
	if len(changes) == 0 {
		return
	}
	b := Batch{Changes: changes, Opens: !h.opened}
	h.opened = true
	for _, l := range h.listeners {
		l.fn(b)
	}
}

// LogChanges is a listener that logs one readable line per change.
func LogChanges(log *slog.Logger) Listener {
	return func(b Batch) {
		if !log.Enabled(context.Background(), slog.LevelInfo) {
			return // the diffs cost more than the rest of a change
		}
		for _, c := range b.Changes {
			attrs := []any{"epoch", c.Epoch, "seq", c.Sequence, "key", c.Key}
			if s := c.Summary(); s != "" {
				attrs = append(attrs, "diff", s)
			}
			log.Info(c.Kind.String()+" "+c.Op.String(), attrs...)
		}
	}
}

func typeName(v any) string { return fmt.Sprintf("%T", v) }
