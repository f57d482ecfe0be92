package engine

import (
	"cmp"
	"errors"
	"fmt"
	"slices"

	"github.com/event-mesh-broadcaster/broadcaster/mesh"
	"github.com/google/btree"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// Engine keeps the mesh and turns object changes into entity changes. It is not safe for
// concurrent use; wrap it (see mesh/hub) when several goroutines share it.
//
// Every input is indexed by what it relates to, so one object change touches only the entities
// it can affect: cost grows with the size of those relations, never with the size of the mesh.
type Engine struct {
	epoch string
	seq   uint64

	brokers    map[ObjectRef]*objectMeta
	eventTypes map[ObjectRef]*eventTypeState
	consumers  map[ObjectRef]*consumerState // Triggers and Subscriptions
	elements   map[ObjectRef]*objectMeta    // the graph's other declared kinds (Sequence, EventPolicy, ...)
	generics   map[ObjectRef]*genericObject // everything else: channels, sources, subscribers, sinks
	graphs     map[ObjectRef]*graphPart     // any object's edges, readiness and address
	referrers  map[ObjectRef]*refSet        // object → the objects whose edges name it
	// deliveredBy: object → the Sequences and Parallels that pass what reaches them on to it
	// (Kind.delivers), so its Backstage id consumes what their consumers deliver.
	deliveredBy map[ObjectRef]*refSet
	crdKinds    map[string]GroupKind         // CRD name → the kind it serves
	kinds       map[GroupKind]*crdObject     // kind → what its CRD says about it
	ids         map[ObjectRef]string         // backstage.io/kubernetes-id of any object
	idIndex     *btree.BTreeG[idInNamespace] // the same ids by namespace, for namespaced views

	eventTypesByProvider  map[ObjectRef]*smallSet[*eventTypeState] // Broker or channel → EventTypes referencing it
	consumersByProvider   map[ObjectRef]*smallSet[*consumerState]
	consumersBySubscriber map[ObjectRef]*smallSet[*consumerState]
	eventTypesByNsType    map[nsType]*smallSet[*eventTypeState]
	sourcesByNsType       map[nsType]*refSet
	genericsByKind        map[GroupKind]*refSet

	entities map[entityID]*record
	tree     *btree.BTreeG[*record]
	dirty    map[entityID]struct{}
	suspects map[ObjectRef]int // objects with a suspect record → how many
	matching matching          // EventTypes nothing takes (lineage)

	// Reused by every flush: the entities to render, and the buffer each is written into.
	dirtyIDs []entityID
	scratch  []byte
	// The labels and annotations of the entity being rendered: a Go map costs some 300 bytes
	// even for one label, and the entity only lives until its JSON is written (render).
	scratchMaps [2]map[string]string
}

type nsType struct{ namespace, typ string }

type eventTypeState struct {
	ref              ObjectRef
	*eventTypeObject                                  // shared with the Parsed it came from: never written to
	consumedBy       smallMap[*consumerState, string] // Trigger or Subscription → the Backstage ids it delivers to (consumerIDs)
}

type consumerState struct {
	ref             ObjectRef
	*consumerObject                           // shared with the Parsed it came from: never written to
	targets         smallSet[*eventTypeState] // EventTypes whose consumedBy this consumer is in
}

type entityID struct {
	kind mesh.EntityKind
	ref  ObjectRef
}

// record is one entity as last emitted. Records in the tree are never mutated, so a cloned
// tree is a consistent snapshot.
type record struct {
	id   entityID
	json []byte
	seq  uint64  // the change that made this JSON
	op   mesh.Op // added or updated
	// foreign: the JSON may name another namespace (foreignOf), so a namespaced view scopes it.
	foreign bool
	// suspect: an edge dangles or the object is not Ready (lineage's broken query looks here).
	suspect bool
	// upstream, when not 0, is the length of the upstream backend's JSON of the entity less its
	// closing brace: json[:upstream] + "}" is the entity without its Graph (UpstreamJSON).
	upstream int32
}

func recordLess(a, b *record) bool {
	if a.id.kind != b.id.kind {
		return a.id.kind < b.id.kind
	}
	x, y := a.id.ref, b.id.ref
	return cmp.Or(cmp.Compare(x.Namespace, y.Namespace), cmp.Compare(x.Name, y.Name),
		cmp.Compare(x.Group, y.Group), cmp.Compare(x.Kind, y.Kind)) < 0
}

// New returns an empty engine whose changes are numbered from 1 in epoch.
func New(epoch string) *Engine {
	return &Engine{
		epoch:                 epoch,
		brokers:               map[ObjectRef]*objectMeta{},
		eventTypes:            map[ObjectRef]*eventTypeState{},
		consumers:             map[ObjectRef]*consumerState{},
		elements:              map[ObjectRef]*objectMeta{},
		generics:              map[ObjectRef]*genericObject{},
		graphs:                map[ObjectRef]*graphPart{},
		referrers:             map[ObjectRef]*refSet{},
		deliveredBy:           map[ObjectRef]*refSet{},
		crdKinds:              map[string]GroupKind{},
		kinds:                 map[GroupKind]*crdObject{},
		ids:                   map[ObjectRef]string{},
		idIndex:               newIDIndex(),
		eventTypesByProvider:  map[ObjectRef]*smallSet[*eventTypeState]{},
		consumersByProvider:   map[ObjectRef]*smallSet[*consumerState]{},
		consumersBySubscriber: map[ObjectRef]*smallSet[*consumerState]{},
		eventTypesByNsType:    map[nsType]*smallSet[*eventTypeState]{},
		sourcesByNsType:       map[nsType]*refSet{},
		genericsByKind:        map[GroupKind]*refSet{},
		entities:              map[entityID]*record{},
		tree:                  btree.NewG(32, recordLess),
		dirty:                 map[entityID]struct{}{},
		suspects:              map[ObjectRef]int{},
		matching:              newMatching(),
	}
}

// Sequence is the number of the last change emitted (0 before any).
func (e *Engine) Sequence() uint64 { return e.seq }

// Restart opens a new epoch without changing the mesh: it returns every entity as an added
// change numbered from 1, in EventMesh order, so a consumer that only listens to the stream
// gets the whole state again. A broadcaster that starts publishing mid-life,
// such as a newly elected leader, restarts first.
func (e *Engine) Restart(epoch string) []mesh.Change {
	e.epoch, e.seq = epoch, 0
	tree := btree.NewG(32, recordLess)
	changes := make([]mesh.Change, 0, e.tree.Len())
	e.tree.Ascend(func(r *record) bool {
		e.seq++
		rec := &record{id: r.id, json: r.json, seq: e.seq, op: mesh.OpAdded, foreign: r.foreign, upstream: r.upstream}
		e.entities[r.id] = rec
		tree.ReplaceOrInsert(rec)
		changes = append(changes, mesh.Change{Epoch: epoch, Sequence: e.seq, Kind: r.id.kind, Op: mesh.OpAdded, Key: r.id.ref.Key(), Entity: r.json})
		return true
	})
	e.tree = tree // snapshots taken before keep the old tree: records are never mutated
	return changes
}

var (
	gkBroker       = GroupKind{mesh.GroupEventing, mesh.KindBrokerObject}
	gkTrigger      = GroupKind{mesh.GroupEventing, KindTriggerObject}
	gkEventType    = GroupKind{mesh.GroupEventing, mesh.KindEventTypeObject}
	gkSubscription = GroupKind{GroupMessaging, KindSubscriptionObject}
	gkCRD          = GroupKind{GroupCRD, KindCRDObject}
)

// ErrInvalidObject marks objects the engine cannot place (no kind or name).
var ErrInvalidObject = errors.New("invalid object")

// ObjectBatch is what a source hands the engine at once: object changes applied together,
// of which only the net entity changes come out. A source hands over one file change, one
// burst of watch events or its whole listing this way, so consumers never see the states in
// between (a consumedBy emptied just before its EventType's delete).
type ObjectBatch struct {
	// Upserts are objects created or changed, read by Parse.
	Upserts []*Parsed
	// Deletes are objects gone.
	Deletes []ObjectRef
	// Replace says Upserts is everything the source holds (a listing or relist): every object
	// the engine holds that Upserts lacks is deleted, so deletions missed while a watch was
	// down still produce their changes. Deletes is then ignored.
	Replace bool
}

// Upserts is a batch of whole objects created or changed, each read by Parse.
func Upserts(objs ...*unstructured.Unstructured) ObjectBatch {
	b := ObjectBatch{Upserts: make([]*Parsed, len(objs))}
	for i, u := range objs {
		b.Upserts[i] = Parse(u)
	}
	return b
}

// Listing is a batch holding everything a source holds (Replace), each object read by Parse.
func Listing(objs ...*unstructured.Unstructured) ObjectBatch {
	b := Upserts(objs...)
	b.Replace = true
	return b
}

// Deletes is a batch of deletions.
func Deletes(refs ...ObjectRef) ObjectBatch { return ObjectBatch{Deletes: refs} }

// Len is the number of objects the batch carries.
func (b ObjectBatch) Len() int { return len(b.Upserts) + len(b.Deletes) }

// Apply applies a batch (deletes first, then upserts, or a whole listing) and returns the
// entity changes it caused: each entity at most once, in its final state. problems lists what
// the engine had to ignore in the objects (an invalid filter, a malformed annotation), each
// naming the object and field; the rest of each object is applied regardless.
func (e *Engine) Apply(b ObjectBatch) (changes []mesh.Change, problems error) {
	if b.Replace {
		keep := make(map[ObjectRef]struct{}, len(b.Upserts))
		for _, p := range b.Upserts {
			keep[p.ref] = struct{}{}
		}
		for _, ref := range e.objectRefs() {
			if _, ok := keep[ref]; !ok {
				e.delete(ref)
			}
		}
	} else {
		for _, ref := range b.Deletes {
			e.delete(ref)
		}
	}
	var errs []error
	for _, p := range b.Upserts {
		errs = append(errs, e.apply(p))
	}
	return e.flush(), errors.Join(errs...)
}

// objectRefs lists every object the engine holds.
func (e *Engine) objectRefs() []ObjectRef {
	var refs []ObjectRef
	for r := range e.brokers {
		refs = append(refs, r)
	}
	for r := range e.eventTypes {
		refs = append(refs, r)
	}
	for r := range e.consumers {
		refs = append(refs, r)
	}
	for r := range e.elements {
		refs = append(refs, r)
	}
	for r := range e.generics {
		refs = append(refs, r)
	}
	for name := range e.crdKinds {
		refs = append(refs, crdRef(name))
	}
	return refs
}

// Parsed is an object read for the engine. Reading is pure (it touches no engine state), so
// callers that serialise the engine behind a lock read objects before taking it: a costly
// filter expression is parsed without holding anyone up.
//
// A Parsed is small (the fields of its kind only, behind one pointer) and the engine keeps
// what it points to rather than a copy, so a cache of Parsed objects (a source's informers)
// costs little beside the engine.
type Parsed struct {
	ref      ObjectRef
	id       string // backstage.io/kubernetes-id
	problems error  // what could not be read, naming the object and field
	kind     *Kind  // the declaration that read it; nil: nothing the mesh uses
	obj      any    // what kind.read read
	graph    *graphPart
}

// Parse reads u for the engine; it is safe for concurrent use.
func Parse(u *unstructured.Unstructured) *Parsed {
	ref := RefOf(u)
	p := &Parsed{ref: ref}
	if ref.Kind == "" || ref.Name == "" {
		p.problems = fmt.Errorf("%w: apiVersion %q kind %q name %q: kind and metadata.name are required",
			ErrInvalidObject, u.GetAPIVersion(), ref.Kind, ref.Name)
		return p
	}
	k := handling(ref.groupKind())
	if k.Find != FindDefinitions {
		if ref.Namespace == "" {
			return p // only definitions matter among cluster-scoped objects
		}
		p.id = u.GetLabels()[LabelBackstageID]
		p.graph = readGraph(u, k.edges)
		if p.graph != nil && k.delivers != nil {
			p.graph.delivers = k.delivers(p.graph)
		}
	}
	obj, err := k.read(u)
	p.kind, p.obj, p.problems = k, obj, objectProblem(ref, err)
	return p
}

// Ref is the object the parse is of.
func (p *Parsed) Ref() ObjectRef { return p.ref }

// Problems is what could not be read of the object (nil: everything), naming the fields.
func (p *Parsed) Problems() error { return p.problems }

// ReferencedKinds lists the undeclared kinds the object's edges name (a subscriber's, a sink's,
// a dead-letter sink's kind), each once. Sources watch them: the mesh needs those objects to
// know whether they exist, where they receive events and which Backstage id they carry.
func (p *Parsed) ReferencedKinds() []GroupKind {
	var out []GroupKind
	for _, t := range p.graph.targets() {
		if gk := t.groupKind(); declaredKind(gk) == nil && !slices.Contains(out, gk) {
			out = append(out, gk)
		}
	}
	return out
}

// GetObjectMeta gives the object's namespace and name to client-go, so an informer can keep
// Parsed objects (its key function reads them through this method).
func (p *Parsed) GetObjectMeta() metav1.Object {
	return &metav1.ObjectMeta{Namespace: p.ref.Namespace, Name: p.ref.Name}
}

// apply puts a parsed object into the engine and returns what could not be read of it.
func (e *Engine) apply(p *Parsed) error {
	if p.kind == nil {
		return p.problems
	}
	if p.kind.Find == FindDefinitions {
		p.kind.upsert(e, p.ref, p.obj)
		return p.problems
	}
	existed := e.exists(p.ref)
	e.setID(p.ref, p.id)
	p.kind.upsert(e, p.ref, p.obj)
	e.setGraph(p.ref, p.graph)
	if !existed {
		e.touched(p.ref)
	}
	return p.problems
}

// ObjectProblem is what the engine had to ignore in one object, naming the fields.
type ObjectProblem struct {
	Ref ObjectRef
	Err error
}

func (p *ObjectProblem) Error() string { return p.Ref.String() + ": " + p.Err.Error() }

func (p *ObjectProblem) Unwrap() error { return p.Err }

func objectProblem(ref ObjectRef, err error) error {
	if err == nil {
		return nil
	}
	return &ObjectProblem{Ref: ref, Err: err}
}

func (e *Engine) delete(ref ObjectRef) {
	k := handling(ref.groupKind())
	if k.Find == FindDefinitions {
		k.remove(e, ref)
		return
	}
	existed := e.exists(ref)
	e.setID(ref, "")
	k.remove(e, ref)
	e.setGraph(ref, nil)
	if existed {
		e.touched(ref)
	}
}

// renderElement is the entity of a Trigger, Subscription or element.
func (e *Engine) renderElement(ref ObjectRef, m *objectMeta) *mesh.Element {
	return &mesh.Element{Namespace: ref.Namespace, Name: ref.Name, UID: m.uid, Group: ref.Group, Kind: ref.Kind,
		Labels: e.scratchMap(0, m.labels), Annotations: e.scratchMap(1, m.annotations), Graph: e.graphOf(ref)}
}
