package engine

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/event-mesh-broadcaster/broadcaster/mesh"
	"github.com/google/btree"
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

	eventTypesByProvider  map[ObjectRef]refSet // Broker or channel → EventTypes referencing it
	consumersByProvider   map[ObjectRef]refSet
	consumersBySubscriber map[ObjectRef]refSet
	eventTypesByNsType    map[nsType]refSet
	sourcesByNsType       map[nsType]refSet
	genericsByKind        map[GroupKind]refSet

	entities map[entityID]*record
	tree     *btree.BTreeG[*record]
	dirty    map[entityID]struct{}
}

type refSet map[ObjectRef]struct{}

type nsType struct{ namespace, typ string }

type eventTypeState struct {
	ref ObjectRef
	eventTypeObject
	consumedBy map[ObjectRef]string // Trigger or Subscription → its subscriber's Backstage id
}

type consumerState struct {
	ref ObjectRef
	consumerObject
	targets refSet // EventTypes whose consumedBy this consumer is in
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
		eventTypesByProvider:  map[ObjectRef]refSet{},
		consumersByProvider:   map[ObjectRef]refSet{},
		consumersBySubscriber: map[ObjectRef]refSet{},
		eventTypesByNsType:    map[nsType]refSet{},
		sourcesByNsType:       map[nsType]refSet{},
		genericsByKind:        map[GroupKind]refSet{},
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
		rec := &record{id: r.id, json: r.json, seq: e.seq, op: mesh.OpAdded}
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
	problems = e.upsert(u)
	return e.flush(), problems
}

// Delete applies the deletion of the object ref and returns the entity changes it caused.
func (e *Engine) Delete(ref ObjectRef) []mesh.Change {
	e.delete(ref)
	return e.flush()
}

// Replace makes the engine hold exactly objs: it deletes every object it holds that objs lacks,
// then upserts objs, and returns the changes as one batch. This is how a relist is applied, so
// deletions missed while a watch was down still produce their changes.
func (e *Engine) Replace(objs []*unstructured.Unstructured) (changes []mesh.Change, problems error) {
	keep := make(map[ObjectRef]struct{}, len(objs))
	for _, u := range objs {
		keep[RefOf(u)] = struct{}{}
	}
	for _, ref := range e.objectRefs() {
		if _, ok := keep[ref]; !ok {
			e.delete(ref)
		}
	}
	var errs []error
	for _, u := range objs {
		errs = append(errs, e.upsert(u))
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
	for r := range e.generics {
		refs = append(refs, r)
	}
	for name := range e.crdKinds {
		refs = append(refs, crdRef(name))
	}
	return refs
}

func crdRef(name string) ObjectRef { return ObjectRef{GroupCRD, KindCRDObject, "", name} }

func (e *Engine) upsert(u *unstructured.Unstructured) error {
	ref := RefOf(u)
	if ref.Kind == "" || ref.Name == "" {
		return fmt.Errorf("%w: apiVersion %q kind %q name %q: kind and metadata.name are required",
			ErrInvalidObject, u.GetAPIVersion(), ref.Kind, ref.Name)
	}
	gk := ref.groupKind()
	if gk == gkCRD {
		crd, err := parseCRD(u)
		if crd.gk.Group == "" || crd.gk.Kind == "" {
			crd = crdObject{} // unusable: as if absent
		}
		e.setKind(ref.Name, crd)
		return objectProblem(ref, err)
	}
	if ref.Namespace == "" {
		return nil // only CRDs matter among cluster-scoped objects
	}
	e.setID(ref, u.GetLabels()[LabelBackstageID])
	switch gk {
	case gkBroker:
		e.upsertBroker(ref, metaOf(u))
	case gkEventType:
		et, err := parseEventType(u)
		e.upsertEventType(ref, et)
		return objectProblem(ref, err)
	case gkTrigger:
		c, problems := parseTrigger(u)
		e.upsertConsumer(ref, c)
		return objectProblem(ref, errors.Join(problems...))
	case gkSubscription:
		e.upsertConsumer(ref, parseSubscription(u))
	default:
		e.upsertGeneric(ref, parseGeneric(u))
	}
	return nil
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

// --- subscribers ---

func (e *Engine) setID(ref ObjectRef, id string) {
	if e.ids[ref] == id {
		return
	}
	if id == "" {
		delete(e.ids, ref)
	} else {
		e.ids[ref] = id
	}
	for c := range e.consumersBySubscriber[ref] {
		e.refreshConsumer(e.consumers[c])
	}
}

// --- brokers ---

func (e *Engine) upsertBroker(ref ObjectRef, m objectMeta) {
	_, existed := e.brokers[ref]
	e.brokers[ref] = &m
	e.mark(mesh.KindBroker, ref)
	if !existed {
		e.refreshConsumersOf(ref)
	}
}

func (e *Engine) deleteBroker(ref ObjectRef) {
	if _, ok := e.brokers[ref]; !ok {
		return
	}
	delete(e.brokers, ref)
	e.mark(mesh.KindBroker, ref)
	e.refreshConsumersOf(ref)
}

// isProvider reports whether ref is an existing Broker or channel.
func (e *Engine) isProvider(ref ObjectRef) bool {
	if ref.groupKind() == gkBroker {
		return e.brokers[ref] != nil
	}
	return e.isChannel(ref)
}

func (e *Engine) isChannel(ref ObjectRef) bool {
	k := e.kinds[ref.groupKind()]
	return k != nil && k.subscribable && e.generics[ref] != nil
}

func (e *Engine) isSource(ref ObjectRef) bool {
	k := e.kinds[ref.groupKind()]
	return k != nil && k.source && e.generics[ref] != nil
}

func (e *Engine) markProvider(ref ObjectRef) {
	if ref.groupKind() == gkBroker {
		e.mark(mesh.KindBroker, ref)
	} else {
		e.mark(mesh.KindSubscribable, ref)
	}
}

// --- event types ---

func (e *Engine) upsertEventType(ref ObjectRef, obj eventTypeObject) {
	et, existed := e.eventTypes[ref]
	if !existed {
		et = &eventTypeState{ref: ref, consumedBy: map[ObjectRef]string{}}
		e.eventTypes[ref] = et
	}
	oldProvider, oldType := et.reference, et.typ
	providerChanged := !existed || !equalRef(oldProvider, obj.reference)
	typeChanged := !existed || oldType != obj.typ
	if existed && providerChanged {
		e.unindexProvided(ref, oldProvider)
	}
	if existed && typeChanged {
		e.unindexType(ref, oldType)
	}
	et.eventTypeObject = obj
	if providerChanged {
		e.indexProvided(ref, obj.reference)
	}
	if typeChanged {
		e.indexType(ref, obj.typ)
	}
	e.mark(mesh.KindEventType, ref)

	// Re-ask the consumers it had and those of its (possibly new) provider.
	for c := range et.consumedBy {
		e.reconsider(e.consumers[c], et)
	}
	if obj.reference != nil {
		for c := range e.consumersByProvider[*obj.reference] {
			e.reconsider(e.consumers[c], et)
		}
	}
}

func (e *Engine) deleteEventType(ref ObjectRef) {
	et, ok := e.eventTypes[ref]
	if !ok {
		return
	}
	e.unindexProvided(ref, et.reference)
	e.unindexType(ref, et.typ)
	for c := range et.consumedBy {
		delete(e.consumers[c].targets, ref)
	}
	delete(e.eventTypes, ref)
	e.mark(mesh.KindEventType, ref)
}

func (e *Engine) indexProvided(et ObjectRef, provider *ObjectRef) {
	if provider != nil {
		addRef(e.eventTypesByProvider, *provider, et)
		e.markProvider(*provider)
	}
}

func (e *Engine) unindexProvided(et ObjectRef, provider *ObjectRef) {
	if provider != nil {
		removeRef(e.eventTypesByProvider, *provider, et)
		e.markProvider(*provider)
	}
}

func (e *Engine) indexType(et ObjectRef, typ string) {
	if typ == "" {
		return
	}
	k := nsType{et.Namespace, typ}
	addRef(e.eventTypesByNsType, k, et)
	for s := range e.sourcesByNsType[k] {
		e.mark(mesh.KindSource, s)
	}
}

func (e *Engine) unindexType(et ObjectRef, typ string) {
	if typ == "" {
		return
	}
	k := nsType{et.Namespace, typ}
	removeRef(e.eventTypesByNsType, k, et)
	for s := range e.sourcesByNsType[k] {
		e.mark(mesh.KindSource, s)
	}
}

// --- consumers (Triggers and Subscriptions) ---

func (e *Engine) upsertConsumer(ref ObjectRef, obj consumerObject) {
	c, existed := e.consumers[ref]
	if existed {
		e.unindexConsumer(c)
	} else {
		c = &consumerState{ref: ref, targets: refSet{}}
		e.consumers[ref] = c
	}
	c.consumerObject = obj
	addRef(e.consumersByProvider, c.provider, ref)
	if c.subscriber != nil {
		addRef(e.consumersBySubscriber, *c.subscriber, ref)
	}
	e.refreshConsumer(c)
}

func (e *Engine) deleteConsumer(ref ObjectRef) {
	c, ok := e.consumers[ref]
	if !ok {
		return
	}
	for t := range c.targets {
		e.withdraw(c, e.eventTypes[t])
	}
	e.unindexConsumer(c)
	delete(e.consumers, ref)
}

func (e *Engine) unindexConsumer(c *consumerState) {
	removeRef(e.consumersByProvider, c.provider, c.ref)
	if c.subscriber != nil {
		removeRef(e.consumersBySubscriber, *c.subscriber, c.ref)
	}
}

func (e *Engine) refreshConsumersOf(provider ObjectRef) {
	for c := range e.consumersByProvider[provider] {
		e.refreshConsumer(e.consumers[c])
	}
}

func (e *Engine) subscriberID(c *consumerState) string {
	if c.subscriber == nil {
		return ""
	}
	return e.ids[*c.subscriber]
}

// refreshConsumer recomputes every EventType a consumer contributes to.
func (e *Engine) refreshConsumer(c *consumerState) {
	id, live := e.subscriberID(c), e.isProvider(c.provider)
	for t := range c.targets {
		if et := e.eventTypes[t]; !e.wants(c, et, id, live) {
			e.withdraw(c, et)
		}
	}
	for t := range e.eventTypesByProvider[c.provider] {
		if et := e.eventTypes[t]; e.wants(c, et, id, live) {
			e.contribute(c, et, id)
		}
	}
}

// reconsider recomputes one consumer's contribution to one EventType.
func (e *Engine) reconsider(c *consumerState, et *eventTypeState) {
	if id := e.subscriberID(c); e.wants(c, et, id, e.isProvider(c.provider)) {
		e.contribute(c, et, id)
	} else {
		e.withdraw(c, et)
	}
}

// wants is the relation rule: a consumer with a labelled subscriber on an existing provider
// consumes the provider's EventTypes that its filter can match.
func (e *Engine) wants(c *consumerState, et *eventTypeState, id string, live bool) bool {
	return id != "" && live && et.reference != nil && *et.reference == c.provider &&
		c.filter.eval(et.attrs) != no
}

func (e *Engine) contribute(c *consumerState, et *eventTypeState, id string) {
	if old, ok := et.consumedBy[c.ref]; !ok || old != id {
		et.consumedBy[c.ref] = id
		e.mark(mesh.KindEventType, et.ref)
	}
	c.targets[et.ref] = struct{}{}
}

func (e *Engine) withdraw(c *consumerState, et *eventTypeState) {
	if _, ok := et.consumedBy[c.ref]; ok {
		delete(et.consumedBy, c.ref)
		e.mark(mesh.KindEventType, et.ref)
	}
	delete(c.targets, et.ref)
}

// --- channels, sources, subscribers ---

func (e *Engine) upsertGeneric(ref ObjectRef, g genericObject) {
	_, existed := e.generics[ref]
	e.generics[ref] = &g
	if !existed {
		addRef(e.genericsByKind, ref.groupKind(), ref)
		if k := e.kinds[ref.groupKind()]; k != nil && k.source {
			e.indexSource(ref, k.eventTypes)
		}
		e.refreshConsumersOf(ref)
	}
	e.mark(mesh.KindSubscribable, ref)
	e.mark(mesh.KindSource, ref)
}

func (e *Engine) deleteGeneric(ref ObjectRef) {
	if _, ok := e.generics[ref]; !ok {
		return
	}
	if k := e.kinds[ref.groupKind()]; k != nil && k.source {
		e.unindexSource(ref, k.eventTypes)
	}
	delete(e.generics, ref)
	removeRef(e.genericsByKind, ref.groupKind(), ref)
	e.refreshConsumersOf(ref)
	e.mark(mesh.KindSubscribable, ref)
	e.mark(mesh.KindSource, ref)
}

func (e *Engine) indexSource(ref ObjectRef, types []string) {
	for _, t := range types {
		addRef(e.sourcesByNsType, nsType{ref.Namespace, t}, ref)
	}
}

func (e *Engine) unindexSource(ref ObjectRef, types []string) {
	for _, t := range types {
		removeRef(e.sourcesByNsType, nsType{ref.Namespace, t}, ref)
	}
}

// setKind records what the CRD called name says about its kind (the zero crdObject: the CRD is
// gone) and re-derives every object of that kind whose role changed.
func (e *Engine) setKind(name string, crd crdObject) {
	if old, ok := e.crdKinds[name]; ok && old != crd.gk {
		e.applyKind(old, nil)
		delete(e.crdKinds, name)
	}
	if crd.gk == (GroupKind{}) {
		return
	}
	e.crdKinds[name] = crd.gk
	e.applyKind(crd.gk, &crd)
}

func (e *Engine) applyKind(gk GroupKind, crd *crdObject) {
	var before, after crdObject
	if old := e.kinds[gk]; old != nil {
		before = *old
	}
	if crd != nil {
		after = *crd
		e.kinds[gk] = crd
	} else {
		delete(e.kinds, gk)
	}
	sourceChanged := before.source != after.source || !slices.Equal(before.eventTypes, after.eventTypes)
	channelChanged := before.subscribable != after.subscribable
	for ref := range e.genericsByKind[gk] {
		if sourceChanged {
			if before.source {
				e.unindexSource(ref, before.eventTypes)
			}
			if after.source {
				e.indexSource(ref, after.eventTypes)
			}
			e.mark(mesh.KindSource, ref)
		}
		if channelChanged {
			e.mark(mesh.KindSubscribable, ref)
			e.refreshConsumersOf(ref)
		}
	}
}

// --- output ---

func (e *Engine) mark(kind mesh.EntityKind, ref ObjectRef) {
	e.dirty[entityID{kind, ref}] = struct{}{}
}

// batchRank orders a batch: EventTypes first, then the entities listing them.
var batchRank = [...]int{mesh.KindEventType: 0, mesh.KindBroker: 1, mesh.KindSubscribable: 2, mesh.KindSource: 3}

func (e *Engine) flush() []mesh.Change {
	if len(e.dirty) == 0 {
		return nil
	}
	ids := make([]entityID, 0, len(e.dirty))
	for id := range e.dirty {
		ids = append(ids, id)
	}
	clear(e.dirty)
	slices.SortFunc(ids, func(a, b entityID) int {
		return cmp.Or(cmp.Compare(batchRank[a.kind], batchRank[b.kind]),
			cmp.Compare(a.ref.Namespace, b.ref.Namespace), cmp.Compare(a.ref.Name, b.ref.Name),
			cmp.Compare(a.ref.Group, b.ref.Group), cmp.Compare(a.ref.Kind, b.ref.Kind))
	})
	var changes []mesh.Change
	for _, id := range ids {
		data, exists := e.render(id)
		old := e.entities[id]
		var c mesh.Change
		switch {
		case exists && old == nil:
			c = mesh.Change{Op: mesh.OpAdded, Key: id.ref.Key(), Entity: data}
		case exists && !bytes.Equal(old.json, data):
			c = mesh.Change{Op: mesh.OpUpdated, Key: id.ref.Key(), Entity: data, Previous: old.json}
		case !exists && old != nil:
			c = mesh.Change{Op: mesh.OpDeleted, Key: id.ref.Key(), Entity: old.json}
		default:
			continue
		}
		e.seq++
		c.Epoch, c.Sequence, c.Kind = e.epoch, e.seq, id.kind
		if c.Op == mesh.OpDeleted {
			delete(e.entities, id)
			e.tree.Delete(old)
		} else {
			rec := &record{id: id, json: data, seq: c.Sequence, op: c.Op}
			e.entities[id] = rec
			e.tree.ReplaceOrInsert(rec)
		}
		changes = append(changes, c)
	}
	return changes
}

// render builds an entity's JSON from the current state; false when the entity does not exist.
func (e *Engine) render(id entityID) ([]byte, bool) {
	var v any
	ref := id.ref
	switch id.kind {
	case mesh.KindBroker:
		m := e.brokers[ref]
		if m == nil {
			return nil, false
		}
		v = mesh.Broker{Namespace: ref.Namespace, Name: ref.Name, UID: m.uid, Labels: m.labels,
			Annotations: m.annotations, ProvidedEventTypes: namesOf(e.eventTypesByProvider[ref])}
	case mesh.KindEventType:
		et := e.eventTypes[ref]
		if et == nil {
			return nil, false
		}
		v = et.entity(ref)
	case mesh.KindSubscribable:
		if !e.isChannel(ref) {
			return nil, false
		}
		g := e.generics[ref]
		v = mesh.Subscribable{Namespace: ref.Namespace, Name: ref.Name, UID: g.uid, Labels: g.labels,
			Annotations: g.annotations, Group: ref.Group, Kind: ref.Kind,
			ProvidedEventTypes: namesOf(e.eventTypesByProvider[ref])}
	case mesh.KindSource:
		if !e.isSource(ref) {
			return nil, false
		}
		g, types := e.generics[ref], e.kinds[ref.groupKind()].eventTypes
		provided := make([]string, 0)
		for _, t := range types {
			for et := range e.eventTypesByNsType[nsType{ref.Namespace, t}] {
				provided = append(provided, et.NamespacedName())
			}
		}
		slices.Sort(provided)
		v = mesh.Source{Namespace: ref.Namespace, Name: ref.Name, UID: g.uid, Labels: g.labels,
			Annotations: g.annotations, Group: ref.Group, Kind: ref.Kind,
			ProvidedEventTypeTypes: orEmpty(types), ProvidedEventTypes: slices.Compact(provided),
			Sink: gknn(g.sink)}
	}
	data, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("mesh: entity %s does not marshal: %v", ref, err)) // only strings and maps
	}
	return data, true
}

func (et *eventTypeState) entity(ref ObjectRef) mesh.EventType {
	consumed := make([]string, 0, len(et.consumedBy))
	for _, id := range et.consumedBy {
		consumed = append(consumed, id)
	}
	slices.Sort(consumed)
	return mesh.EventType{Namespace: ref.Namespace, Name: ref.Name, Type: et.typ, UID: et.uid,
		Description: optional(et.description), SchemaURL: optional(et.schemaURL),
		SchemaData: optional(et.schemaData), Labels: et.labels, Annotations: et.annotations,
		Reference: gknn(et.reference), ConsumedBy: slices.Compact(consumed)}
}

func namesOf(s refSet) []string {
	names := make([]string, 0, len(s))
	for r := range s {
		names = append(names, r.NamespacedName())
	}
	slices.Sort(names)
	return names
}

func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func gknn(r *ObjectRef) *mesh.GroupKindNamespacedName {
	if r == nil {
		return nil
	}
	return &mesh.GroupKindNamespacedName{Group: r.Group, Kind: r.Kind, Namespace: r.Namespace, Name: r.Name}
}

func equalRef(a, b *ObjectRef) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

func addRef[K comparable](m map[K]refSet, k K, r ObjectRef) {
	s := m[k]
	if s == nil {
		s = refSet{}
		m[k] = s
	}
	s[r] = struct{}{}
}

func removeRef[K comparable](m map[K]refSet, k K, r ObjectRef) {
	if s := m[k]; s != nil {
		delete(s, r)
		if len(s) == 0 {
			delete(m, k)
		}
	}
}
