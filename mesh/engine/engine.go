package engine

import (
	"cmp"
	"errors"
	"fmt"

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
	generics   map[ObjectRef]*genericObject // everything else: channels, sources, subscribers
	crdKinds   map[string]GroupKind         // CRD name → the kind it serves
	kinds      map[GroupKind]*crdObject     // kind → what its CRD says about it
	ids        map[ObjectRef]string         // backstage.io/kubernetes-id of any object
	idIndex    *btree.BTreeG[idInNamespace] // the same ids by namespace, for namespaced views

	eventTypesByProvider  map[ObjectRef]*smallSet[*eventTypeState] // Broker or channel → EventTypes referencing it
	consumersByProvider   map[ObjectRef]*smallSet[*consumerState]
	consumersBySubscriber map[ObjectRef]*smallSet[*consumerState]
	eventTypesByNsType    map[nsType]*smallSet[*eventTypeState]
	sourcesByNsType       map[nsType]*refSet
	genericsByKind        map[GroupKind]*refSet

	entities map[entityID]*record
	tree     *btree.BTreeG[*record]
	dirty    map[entityID]struct{}
}

type nsType struct{ namespace, typ string }

type eventTypeState struct {
	ref              ObjectRef
	*eventTypeObject                                  // shared with the Parsed it came from: never written to
	consumedBy       smallMap[*consumerState, string] // Trigger or Subscription → its subscriber's Backstage id
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
		generics:              map[ObjectRef]*genericObject{},
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
	}
}

// Epoch names the sequence space of this engine's changes.
func (e *Engine) Epoch() string { return e.epoch }

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
		rec := &record{id: r.id, json: r.json, seq: e.seq, op: mesh.OpAdded, foreign: r.foreign}
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

// Upsert applies a created or updated object and returns the entity changes it caused.
// problems lists what the engine had to ignore in the object (an invalid filter, a malformed
// annotation), each naming the object and field; the rest of the object is applied regardless.
func (e *Engine) Upsert(u *unstructured.Unstructured) (changes []mesh.Change, problems error) {
	return e.UpsertParsed(Parse(u))
}

// Delete applies the deletion of the object ref and returns the entity changes it caused.
func (e *Engine) Delete(ref ObjectRef) []mesh.Change {
	e.delete(ref)
	return e.flush()
}

// Apply applies deletes, then upserts, together, and returns only the net entity changes: each
// entity at most once, in its final state. A source hands over one file change or one relist
// this way, so consumers never see the states in between.
func (e *Engine) Apply(upserts []*unstructured.Unstructured, deletes []ObjectRef) (changes []mesh.Change, problems error) {
	return e.ApplyParsed(ParseAll(upserts), deletes)
}

// Replace makes the engine hold exactly objs: it deletes every object it holds that objs lacks,
// then upserts objs, and returns the changes as one batch. This is how a relist is applied, so
// deletions missed while a watch was down still produce their changes.
func (e *Engine) Replace(objs []*unstructured.Unstructured) (changes []mesh.Change, problems error) {
	return e.ReplaceParsed(ParseAll(objs))
}

// ParseAll is Parse of each object.
func ParseAll(objs []*unstructured.Unstructured) []*Parsed {
	out := make([]*Parsed, len(objs))
	for i, u := range objs {
		out[i] = Parse(u)
	}
	return out
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
	for r := range e.generics {
		refs = append(refs, r)
	}
	for name := range e.crdKinds {
		refs = append(refs, crdRef(name))
	}
	return refs
}

func crdRef(name string) ObjectRef { return ObjectRef{GroupCRD, KindCRDObject, "", name} }

// Parsed is an object read for the engine. Reading is pure (it touches no engine state), so
// callers that serialise the engine behind a lock read objects before taking it: a costly
// filter expression is parsed without holding anyone up.
//
// A Parsed is small (the fields of its kind only, behind one pointer) and the engine keeps
// what it points to rather than a copy, so a cache of Parsed objects (a source's informers)
// costs little beside the engine.
type Parsed struct {
	ref      ObjectRef
	version  string // metadata.resourceVersion
	id       string // backstage.io/kubernetes-id
	problems error  // what could not be read, naming the object and field
	skip     bool   // cluster-scoped and not a CRD: nothing the mesh uses
	crd      *crdObject
	meta     *objectMeta // a Broker
	et       *eventTypeObject
	consumer *consumerObject
	generic  *genericObject
}

// Parse reads u for Upsert; it is safe for concurrent use.
func Parse(u *unstructured.Unstructured) *Parsed {
	ref := RefOf(u)
	p := &Parsed{ref: ref, version: u.GetResourceVersion()}
	if ref.Kind == "" || ref.Name == "" {
		p.skip = true
		p.problems = fmt.Errorf("%w: apiVersion %q kind %q name %q: kind and metadata.name are required",
			ErrInvalidObject, u.GetAPIVersion(), ref.Kind, ref.Name)
		return p
	}
	gk := ref.groupKind()
	if gk == gkCRD {
		crd, err := parseCRD(u)
		if crd.gk.Group == "" || crd.gk.Kind == "" {
			crd = crdObject{} // unusable: as if absent
		}
		p.crd, p.problems = &crd, objectProblem(ref, err)
		return p
	}
	if ref.Namespace == "" {
		p.skip = true // only CRDs matter among cluster-scoped objects
		return p
	}
	p.id = u.GetLabels()[LabelBackstageID]
	switch gk {
	case gkBroker:
		m := metaOf(u)
		p.meta = &m
	case gkEventType:
		et, err := parseEventType(u)
		p.et, p.problems = &et, objectProblem(ref, err)
	case gkTrigger:
		c, problems := parseTrigger(u)
		p.consumer, p.problems = &c, objectProblem(ref, errors.Join(problems...))
	case gkSubscription:
		c := parseSubscription(u)
		p.consumer = &c
	default:
		g := parseGeneric(u)
		p.generic = &g
	}
	return p
}

// Ref is the object the parse is of.
func (p *Parsed) Ref() ObjectRef { return p.ref }

// ResourceVersion is the object's metadata.resourceVersion, as read.
func (p *Parsed) ResourceVersion() string { return p.version }

// Problems is what could not be read of the object (nil: everything), naming the fields.
func (p *Parsed) Problems() error { return p.problems }

// Deleted stands for the deletion of ref, for handlers that take objects: only its Ref is read.
func Deleted(ref ObjectRef) *Parsed { return &Parsed{ref: ref, skip: true} }

// Subscriber is the subscriber a Trigger or Subscription references, its namespace defaulted as
// the mesh resolves it; ok is false for other kinds and for URI-only subscribers. Sources use
// it to know which subscriber objects the mesh needs to see.
func (p *Parsed) Subscriber() (ObjectRef, bool) {
	if p.consumer == nil || p.consumer.subscriber == nil {
		return ObjectRef{}, false
	}
	return *p.consumer.subscriber, true
}

// GetObjectMeta gives the object's namespace and name to client-go, so an informer can keep
// Parsed objects (its key function reads them through this method).
func (p *Parsed) GetObjectMeta() metav1.Object {
	return &metav1.ObjectMeta{Namespace: p.ref.Namespace, Name: p.ref.Name}
}

// apply puts a parsed object into the engine and returns what could not be read of it.
func (e *Engine) apply(p *Parsed) error {
	if p.skip {
		return p.problems
	}
	ref := p.ref
	gk := ref.groupKind()
	if gk == gkCRD {
		e.setKind(ref.Name, *p.crd)
		return p.problems
	}
	e.setID(ref, p.id)
	switch gk {
	case gkBroker:
		e.upsertBroker(ref, p.meta)
	case gkEventType:
		e.upsertEventType(ref, p.et)
	case gkTrigger, gkSubscription:
		e.upsertConsumer(ref, p.consumer)
	default:
		e.upsertGeneric(ref, p.generic)
	}
	return p.problems
}

// UpsertParsed is Upsert of an object read by Parse.
func (e *Engine) UpsertParsed(p *Parsed) (changes []mesh.Change, problems error) {
	problems = e.apply(p)
	return e.flush(), problems
}

// ApplyParsed is Apply of objects read by Parse.
func (e *Engine) ApplyParsed(upserts []*Parsed, deletes []ObjectRef) (changes []mesh.Change, problems error) {
	for _, ref := range deletes {
		e.delete(ref)
	}
	var errs []error
	for _, p := range upserts {
		errs = append(errs, e.apply(p))
	}
	return e.flush(), errors.Join(errs...)
}

// ReplaceParsed is Replace of objects read by Parse.
func (e *Engine) ReplaceParsed(objs []*Parsed) (changes []mesh.Change, problems error) {
	keep := make(map[ObjectRef]struct{}, len(objs))
	for _, p := range objs {
		keep[p.ref] = struct{}{}
	}
	for _, ref := range e.objectRefs() {
		if _, ok := keep[ref]; !ok {
			e.delete(ref)
		}
	}
	var errs []error
	for _, p := range objs {
		errs = append(errs, e.apply(p))
	}
	return e.flush(), errors.Join(errs...)
}

func objectProblem(ref ObjectRef, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", ref, err)
}

func (e *Engine) delete(ref ObjectRef) {
	gk := ref.groupKind()
	if gk == gkCRD {
		e.setKind(ref.Name, crdObject{})
		return
	}
	e.setID(ref, "")
	switch gk {
	case gkBroker:
		e.deleteBroker(ref)
	case gkEventType:
		e.deleteEventType(ref)
	case gkTrigger, gkSubscription:
		e.deleteConsumer(ref)
	default:
		e.deleteGeneric(ref)
	}
}
