package lineage

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/event-mesh-broadcaster/broadcaster/mesh"
)

// Graph is the event graph a query walks: the engine's live view (mesh/engine), read under its
// owner's lock for the length of one query.
type Graph interface {
	// Node is what the graph holds of the object key; false when it holds no such object.
	Node(key mesh.Key) (Node, bool)
	// Referrers calls fn with each object whose edges name key, until fn returns false.
	Referrers(key mesh.Key, fn func(mesh.Key) bool)
	// Match says whether an event can pass the filter of consumer (a Trigger). eventType is
	// what is known of the event; nil: nothing.
	Match(consumer mesh.Key, eventType *mesh.Key) Match
	// Producers calls fn with what produces events of the EventType, until fn returns false.
	Producers(eventType mesh.Key, fn func(mesh.Key) bool)
	// Policies calls fn with the EventPolicies of a namespace, until fn returns false.
	Policies(namespace string, fn func(mesh.Key) bool)
	// Selects reports whether an EventPolicy's "to" selector (as written) picks the object.
	Selects(selector json.RawMessage, key mesh.Key) bool
	// Each calls fn with every object in key order, until fn returns false.
	Each(fn func(mesh.Key) bool)
}

// Suspects is a Graph that can name the objects that may be broken, so a broken query need not
// look at every object. Every object with a problem must be among them (more may be).
type Suspects interface {
	Suspects(fn func(mesh.Key) bool)
}

// Node is what the graph holds of one object.
type Node struct {
	// Kind is what the object is; mesh.KindSink for anything that only receives events.
	Kind mesh.EntityKind
	// Graph is its edges (dangling ones flagged) and readiness.
	Graph mesh.Graph
	// Reference is an EventType's Broker or channel.
	Reference *mesh.Key
}

// Match is a filter's answer: whether an event can pass it.
type Match uint8

// Matches. A filter on an attribute the event leaves open answers Maybe.
const (
	No Match = iota
	Maybe
	Yes
)

func (m Match) String() string {
	switch m {
	case Yes:
		return "yes"
	case Maybe:
		return "maybe"
	}
	return "no"
}

// RoleReference is the hop from an EventType to the Broker or channel it names.
const RoleReference mesh.EdgeRole = "reference"

// ErrNotFound is returned when the query names an entity the graph does not hold (or the caller
// may not see).
var ErrNotFound = errors.New("no such entity")

// Ask answers q from g, showing only the namespaces visible admits (nil: every namespace).
func Ask(g Graph, q Query, visible func(namespace string) bool) (Answer, error) {
	if visible == nil {
		visible = func(string) bool { return true }
	}
	w := &walker{g: g, visible: visible, limit: q.limit(), ans: Answer{Query: q, Paths: []Path{}}}
	switch {
	case q.EventType != nil:
		return w.ans, w.whereItGoes(*q.EventType)
	case q.Target != nil:
		return w.ans, w.whoSends(*q.Target)
	case q.Broken:
		w.broken()
		return w.ans, nil
	}
	return w.ans, fmt.Errorf("%w: ask exactly one of eventType, target or broken", ErrQuery)
}

type walker struct {
	g       Graph
	visible func(string) bool
	limit   int
	ans     Answer
	hops    []Hop      // the current path
	on      []mesh.Key // the objects on it (a zero Key for a URI)
}

// full reports whether the answer holds its limit of paths (and marks it truncated).
func (w *walker) full() bool {
	if len(w.ans.Paths) >= w.limit {
		w.ans.Truncated = true
		return true
	}
	return false
}

func (w *walker) onPath(k mesh.Key) bool { return slices.Contains(w.on, k) }

func (w *walker) push(h Hop, k mesh.Key) {
	w.hops = append(w.hops, h)
	w.on = append(w.on, k)
}

// endWith ends the current path with one more hop: emits it, ending with end.
func (w *walker) endWith(h Hop, k mesh.Key, end string, reversed bool) {
	w.push(h, k)
	w.emit(end, reversed)
	w.pop()
}

func (w *walker) pop() {
	w.hops = w.hops[:len(w.hops)-1]
	w.on = w.on[:len(w.on)-1]
}

// emit records the current path, reversed for a walk that went upstream.
func (w *walker) emit(end string, reversed bool) {
	if w.full() {
		return
	}
	if end == EndTooLong {
		w.ans.Truncated = true // the 64-hop bound cut the walk
	}
	p := Path{Hops: slices.Clone(w.hops), End: end, Keys: []string{}}
	if reversed {
		slices.Reverse(p.Hops)
	}
	for _, h := range p.Hops {
		if h.Key != "" {
			p.Keys = append(p.Keys, h.Key)
		}
	}
	w.ans.Paths = append(w.ans.Paths, p)
}

// lookup finds the entity a query names, as the caller may see it.
func (w *walker) lookup(k mesh.Key) (Node, error) {
	n, ok := w.g.Node(k)
	if !ok || !w.visible(k.Namespace) {
		return Node{}, fmt.Errorf("%w: %s", ErrNotFound, k)
	}
	return n, nil
}

// step is an edge a walk may follow: to an object or to a URI.
type step struct {
	to  *mesh.Key
	uri string
	hop Hop       // what the hop says of the edge (role, index, filter, match, ...)
	ev  *mesh.Key // what is known of the event past the hop
}

func keyOf(r *mesh.GroupKindNamespacedName) *mesh.Key {
	if r == nil {
		return nil
	}
	return &mesh.Key{Group: r.Group, Kind: r.Kind, Namespace: r.Namespace, Name: r.Name}
}

func edgeStep(ed mesh.Edge, ev *mesh.Key, changes bool) step {
	s := step{to: keyOf(ed.Ref), uri: ed.URI, hop: Hop{Role: ed.Role, Index: ed.Index, Changes: changes}, ev: ev}
	if changes {
		s.ev = nil
	}
	return s
}

// deadLetterOf is the object's own dead-letter sink (a key as the caller may see it, or a
// URI), or "".
func (w *walker) deadLetterOf(g mesh.Graph) string { return w.deadLetterAt(g, nil) }

// deadLetterAt is the dead-letter sink of a Sequence step's or Parallel branch's deliveries
// (index; nil: the object's own).
func (w *walker) deadLetterAt(g mesh.Graph, index *int) string {
	for _, ed := range g.Edges {
		if ed.Role == mesh.RoleDeadLetterSink && (index == nil) == (ed.Index == nil) && (index == nil || *index == *ed.Index) {
			if k := keyOf(ed.Ref); k != nil {
				return w.shown(*k)
			}
			return ed.URI
		}
	}
	return ""
}

// --- where does it go ---

func (w *walker) whereItGoes(et mesh.Key) error {
	n, err := w.lookup(et)
	if err != nil {
		return err
	}
	if n.Kind != mesh.KindEventType {
		return fmt.Errorf("%w: %s is not an EventType", ErrNotFound, et)
	}
	var producers []mesh.Key
	w.g.Producers(et, func(p mesh.Key) bool {
		if w.visible(p.Namespace) {
			producers = append(producers, p)
		}
		return true
	})
	slices.SortFunc(producers, mesh.Key.Compare)
	for _, p := range slices.Compact(producers) { // a source may own the EventType too
		w.ans.Producers = append(w.ans.Producers, p.String())
	}
	w.forward(step{to: &et, ev: &et})
	return nil
}

// forward walks from s on, emitting every path that ends past it.
func (w *walker) forward(s step) {
	if w.full() {
		return
	}
	h := s.hop
	if s.to == nil {
		h.URI = s.uri
		w.endWith(h, mesh.Key{}, EndURI, false)
		return
	}
	k := *s.to
	if !w.visible(k.Namespace) {
		w.endWith(hiddenHop(h), k, EndHidden, false)
		return
	}
	h.Key = k.String()
	if w.onPath(k) {
		w.endWith(h, k, EndCycle, false)
		return
	}
	n, ok := w.g.Node(k)
	if !ok {
		h.Dangling = true
		w.endWith(h, k, EndDangling, false)
		return
	}
	h.Ready = notReady(n.Graph.Ready)
	w.push(h, k)
	defer w.pop()
	if len(w.hops) > MaxHops {
		w.emit(EndTooLong, false)
		return
	}
	if n.Kind == mesh.KindSequence || n.Kind == mesh.KindParallel {
		w.flow(n, s.ev)
		return
	}
	steps, end := w.onward(k, n, s.ev)
	if len(steps) == 0 {
		w.emit(end, false)
		return
	}
	for _, next := range steps {
		w.forward(next)
	}
}

// hiddenHop is what a hop into a namespace the caller may not see says: how the visible
// object before it sends there, nothing of the object itself (its key, filter, dead-letter
// sink, readiness).
func hiddenHop(h Hop) Hop { return Hop{Role: h.Role, Index: h.Index, Changes: h.Changes} }

func notReady(r *mesh.Readiness) *mesh.Readiness {
	if r == nil || r.Status == "True" {
		return nil
	}
	return r
}

// onward lists where events go from an object; when nowhere, the path's end.
func (w *walker) onward(k mesh.Key, n Node, ev *mesh.Key) ([]step, string) {
	switch n.Kind {
	case mesh.KindEventType:
		if n.Reference == nil {
			return nil, EndNowhere
		}
		return []step{{to: n.Reference, hop: Hop{Role: RoleReference}, ev: ev}}, ""
	case mesh.KindBroker:
		return w.consumersOf(k, n, mesh.KindTrigger, mesh.RoleBroker, ev), EndNowhere
	case mesh.KindSubscribable:
		return w.consumersOf(k, n, mesh.KindSubscription, mesh.RoleChannel, ev), EndNowhere
	}
	var steps []step
	for _, ed := range n.Graph.Edges {
		switch {
		case ed.Role == mesh.RoleSubscriber && (n.Kind == mesh.KindTrigger || n.Kind == mesh.KindSubscription),
			ed.Role == mesh.RoleSink && n.Kind == mesh.KindSource,
			ed.Role == mesh.RoleBroker && n.Kind == mesh.KindRequestReply:
			steps = append(steps, edgeStep(ed, ev, false))
		case ed.Role == mesh.RoleReply && n.Kind == mesh.KindSubscription,
			(ed.Role == mesh.RoleSink || ed.Role == mesh.RoleReply) && n.Kind == mesh.KindEventTransform:
			steps = append(steps, edgeStep(ed, ev, true))
		}
	}
	switch n.Kind {
	case mesh.KindTrigger, mesh.KindSubscription, mesh.KindSource, mesh.KindRequestReply, mesh.KindEventTransform:
		return steps, EndNowhere
	}
	return steps, EndSink
}

// consumersOf lists the Triggers (or Subscriptions) reading from a Broker (or channel) that
// an event can pass, in key order.
func (w *walker) consumersOf(k mesh.Key, carrier Node, kind mesh.EntityKind, role mesh.EdgeRole, ev *mesh.Key) []step {
	carrierDLS := w.deadLetterOf(carrier.Graph)
	var steps []step
	w.g.Referrers(k, func(r mesh.Key) bool {
		n, ok := w.g.Node(r)
		if !ok || n.Kind != kind || !reads(n.Graph, role, k) {
			return true
		}
		h := Hop{Role: role, DeadLetterSink: cmp.Or(w.deadLetterOf(n.Graph), carrierDLS)}
		if kind == mesh.KindTrigger {
			m := w.g.Match(r, ev)
			if m == No {
				return true
			}
			h.Match = m.String()
			for _, ed := range n.Graph.Edges {
				if ed.Role == mesh.RoleSubscriber && len(ed.Filter) > 0 {
					h.Filter = ed.Filter
				}
			}
		}
		steps = append(steps, step{to: &r, hop: h, ev: ev})
		return true
	})
	slices.SortFunc(steps, func(a, b step) int { return a.to.Compare(*b.to) })
	return steps
}

// reads reports whether g has an edge of role naming k (a Trigger's Broker, a Subscription's
// channel).
func reads(g mesh.Graph, role mesh.EdgeRole, k mesh.Key) bool {
	for _, ed := range g.Edges {
		if ed.Role == role && ed.Ref != nil && *keyOf(ed.Ref) == k {
			return true
		}
	}
	return false
}

// flow walks a Sequence (its steps in turn, each fed the previous one's output, then its
// reply) or a Parallel (each branch: filter, subscriber, then the branch's reply or the
// Parallel's). The steps and branches are hops of the path; what they do with the events
// beyond answering is their own routes, not followed here.
func (w *walker) flow(n Node, ev *mesh.Key) {
	var reply *mesh.Edge
	branches := map[int][]mesh.Edge{}
	for i, ed := range n.Graph.Edges {
		switch {
		case ed.Role == mesh.RoleReply && ed.Index == nil:
			reply = &n.Graph.Edges[i]
		case ed.Index != nil && (ed.Role == mesh.RoleSubscriber || ed.Role == mesh.RoleFilter || ed.Role == mesh.RoleReply):
			branches[*ed.Index] = append(branches[*ed.Index], ed)
		}
	}
	order := slices.Sorted(func(yield func(int) bool) {
		for i := range branches {
			if !yield(i) {
				return
			}
		}
	})
	if n.Kind == mesh.KindSequence {
		var chain []mesh.Edge
		for _, i := range order {
			for _, ed := range branches[i] {
				if ed.Role == mesh.RoleSubscriber {
					chain = append(chain, ed)
				}
			}
		}
		w.chain(n.Graph, chain, reply, ev, 0)
		return
	}
	if len(order) == 0 {
		w.emit(EndNowhere, false)
	}
	for _, i := range order {
		var chain []mesh.Edge
		branchReply := reply
		for _, role := range []mesh.EdgeRole{mesh.RoleFilter, mesh.RoleSubscriber} {
			for _, ed := range branches[i] {
				if ed.Role == role {
					chain = append(chain, ed)
				}
			}
		}
		for j, ed := range branches[i] {
			if ed.Role == mesh.RoleReply {
				branchReply = &branches[i][j]
			}
		}
		w.chain(n.Graph, chain, branchReply, ev, 0)
	}
}

// chain walks the hops of a flow in turn (each past the first may carry another event), then
// the reply, if any, and on from there.
func (w *walker) chain(flow mesh.Graph, hops []mesh.Edge, reply *mesh.Edge, ev *mesh.Key, at int) {
	if w.full() {
		return
	}
	if at == len(hops) {
		if reply == nil {
			w.emit(EndSink, false)
			return
		}
		w.forward(edgeStep(*reply, ev, true))
		return
	}
	ed := hops[at]
	h := Hop{Role: ed.Role, Index: ed.Index, Changes: at > 0 && hops[at-1].Role == mesh.RoleSubscriber}
	if ed.Role == mesh.RoleFilter {
		h.Match = Maybe.String() // a filter service decides at run time
	}
	if ed.Role == mesh.RoleSubscriber && ed.Index != nil {
		h.DeadLetterSink = w.deadLetterAt(flow, ed.Index) // the step's or branch's delivery
	}
	k := keyOf(ed.Ref)
	switch {
	case k == nil:
		h.URI = ed.URI
		w.push(h, mesh.Key{})
	case !w.visible(k.Namespace):
		w.endWith(hiddenHop(h), *k, EndHidden, false)
		return
	case w.onPath(*k):
		h.Key = k.String()
		w.endWith(h, *k, EndCycle, false)
		return
	case ed.Dangling:
		h.Key, h.Dangling = k.String(), true
		w.endWith(h, *k, EndDangling, false)
		return
	default:
		h.Key = k.String()
		if n, ok := w.g.Node(*k); ok {
			h.Ready = notReady(n.Graph.Ready)
		}
		w.push(h, *k)
	}
	defer w.pop()
	if h.Changes {
		ev = nil
	}
	w.chain(flow, hops, reply, ev, at+1)
}

// --- who sends, and who may ---

// sendsTo reports whether an edge of an object of kind is one events go along to its target.
func sendsTo(kind mesh.EntityKind, role mesh.EdgeRole) bool {
	switch role {
	case mesh.RoleSubscriber, mesh.RoleReply, mesh.RoleSink, mesh.RoleDeadLetterSink, mesh.RoleFilter:
		return true
	case mesh.RoleBroker:
		return kind == mesh.KindRequestReply
	}
	return false
}

// readsFrom is the Broker or channel a Trigger or Subscription delivers from.
func readsFrom(n Node) *mesh.Edge {
	for i, ed := range n.Graph.Edges {
		if (n.Kind == mesh.KindTrigger && ed.Role == mesh.RoleBroker) || (n.Kind == mesh.KindSubscription && ed.Role == mesh.RoleChannel) {
			return &n.Graph.Edges[i]
		}
	}
	return nil
}

// senders lists what sends to k directly, in key order: each object and the edge's role.
func (w *walker) senders(k mesh.Key) []Sender {
	var out []Sender
	w.g.Referrers(k, func(r mesh.Key) bool {
		n, ok := w.g.Node(r)
		if !ok {
			return true
		}
		for _, ed := range n.Graph.Edges {
			if ed.Ref == nil || *keyOf(ed.Ref) != k || !sendsTo(n.Kind, ed.Role) {
				continue
			}
			s := Sender{Key: r.String(), Role: ed.Role}
			if from := readsFrom(n); from != nil && from.Ref != nil {
				s.Via = w.shown(*keyOf(from.Ref))
			}
			if !slices.Contains(out, s) {
				out = append(out, s)
			}
		}
		return true
	})
	slices.SortFunc(out, func(a, b Sender) int {
		return cmp.Or(mesh.MustParseKey(a.Key).Compare(mesh.MustParseKey(b.Key)), cmp.Compare(a.Role, b.Role))
	})
	return out
}

func (w *walker) whoSends(target mesh.Key) error {
	n, err := w.lookup(target)
	if err != nil {
		return err
	}
	policies := w.policiesOf(target, n.Kind)
	w.ans.Authorization = "default"
	if len(policies) > 0 {
		w.ans.Authorization = "policies"
		w.ans.Policies = policies
	}
	for _, s := range w.senders(target) {
		k := mesh.MustParseKey(s.Key)
		if !w.visible(k.Namespace) {
			continue
		}
		if len(policies) > 0 {
			s.Admitted = admitted(policies, s.Key)
		}
		w.ans.Senders = append(w.ans.Senders, s)
	}
	w.push(Hop{Key: target.String(), Ready: notReady(n.Graph.Ready)}, target)
	w.backward(target)
	w.pop()
	return nil
}

// backward walks from k (on the path) to everything that sends to it, emitting each path
// that starts where nothing sends any more.
func (w *walker) backward(k mesh.Key) {
	if w.full() {
		return
	}
	if len(w.hops) > MaxHops {
		w.emit(EndTooLong, true)
		return
	}
	n, _ := w.g.Node(k)
	// A Trigger or Subscription gets its events from its Broker or channel.
	if from := readsFrom(n); from != nil && from.Ref != nil {
		w.upstream(*keyOf(from.Ref), Hop{Role: from.Role})
		return
	}
	senders := w.senders(k)
	if len(senders) == 0 {
		w.emit(EndOrigin, true)
		return
	}
	for _, s := range senders {
		w.upstream(mesh.MustParseKey(s.Key), Hop{Role: s.Role})
	}
}

// upstream steps back to from, which sends to the path's first object along an edge of h.Role
// (the role is kept on the hop that follows, as forward paths keep it).
func (w *walker) upstream(from mesh.Key, h Hop) {
	last := &w.hops[len(w.hops)-1]
	role := last.Role
	last.Role = h.Role // the edge between from and the hop after it
	defer func() { w.hops[len(w.hops)-1].Role = role }()
	next := Hop{}
	switch {
	case !w.visible(from.Namespace):
		w.endWith(next, from, EndHidden, true)
		return
	case w.onPath(from):
		next.Key = from.String()
		w.endWith(next, from, EndCycle, true)
		return
	}
	next.Key = from.String()
	n, ok := w.g.Node(from)
	if !ok {
		next.Dangling = true
		w.endWith(next, from, EndDangling, true)
		return
	}
	next.Ready = notReady(n.Graph.Ready)
	w.push(next, from)
	defer w.pop()
	w.backward(from)
}

// policiesOf lists the EventPolicies that apply to k: those of its namespace whose "to" names
// it, picks it by selector, or is empty (every addressable of the namespace).
func (w *walker) policiesOf(k mesh.Key, kind mesh.EntityKind) []Policy {
	if !kind.EnforcesPolicies() {
		return nil
	}
	var out []Policy
	w.g.Policies(k.Namespace, func(p mesh.Key) bool {
		n, ok := w.g.Node(p)
		if !ok {
			return true
		}
		applies, targeted := false, false
		pol := Policy{Key: p.String(), From: []string{}}
		for _, ed := range n.Graph.Edges {
			switch ed.Role {
			case mesh.RoleTo:
				targeted = true
				if (ed.Ref != nil && *keyOf(ed.Ref) == k) || (ed.Ref == nil && len(ed.Selector) > 0 && w.g.Selects(ed.Selector, k)) {
					applies = true
				}
			case mesh.RoleFrom:
				if ed.Ref != nil {
					pol.From = append(pol.From, w.shown(*keyOf(ed.Ref)))
				} else {
					pol.From = append(pol.From, "sub:"+ed.Subject)
				}
				if len(ed.Filter) > 0 {
					pol.Filter = ed.Filter
				}
			}
		}
		if applies || !targeted {
			out = append(out, pol)
		}
		return true
	})
	return out
}

// admitted says whether policies admit a sender: by name, perhaps (by OIDC subject), or not.
func admitted(policies []Policy, sender string) string {
	maybe := false
	for _, p := range policies {
		for _, f := range p.From {
			if f == sender {
				return Yes.String()
			}
			if len(f) > 4 && f[:4] == "sub:" {
				maybe = true
			}
		}
	}
	if maybe {
		return Maybe.String()
	}
	return No.String()
}

// --- what is broken ---

func (w *walker) broken() {
	// The objects to look at: the suspects the graph names, or else every object.
	each := w.g.Each
	if s, ok := w.g.(Suspects); ok {
		each = s.Suspects
	}
	seen := map[mesh.Key]bool{}
	var all []found
	each(func(k mesh.Key) bool {
		if seen[k] {
			return true
		}
		seen[k] = true
		n, ok := w.g.Node(k)
		if !ok {
			return true
		}
		// A sender of another namespace may be one the caller sees: its problem is reported.
		w.unadmitted(k, n.Kind, func(p found) { all = append(all, p) })
		if !w.visible(k.Namespace) {
			return true
		}
		add := func(p Problem) { all = append(all, found{Problem: p, key: k}) }
		for _, ed := range n.Graph.Edges {
			if ed.Dangling && ed.Ref != nil {
				ref := keyOf(ed.Ref)
				add(Problem{Problem: ProblemDangling, Key: k.String(), Role: ed.Role, Ref: w.shown(*ref),
					Detail: fmt.Sprintf("its %s names %s, which does not exist", ed.Role, w.shown(*ref))})
			}
		}
		if r := notReady(n.Graph.Ready); r != nil {
			add(Problem{Problem: ProblemNotReady, Key: k.String(), Ready: r, Detail: "Ready is " + r.Status + reason(r)})
		}
		if n.Kind == mesh.KindEventType {
			if p, bad := w.unmatched(k, n); bad {
				add(p)
			}
		}
		return true
	})
	// Key order; for one key its dangling edges (in edge order), notReady, unmatched (or its
	// dangling reference), unadmitted (by target and role).
	slices.SortStableFunc(all, func(a, b found) int {
		c := cmp.Or(a.key.Compare(b.key), cmp.Compare(problemRank[a.Problem.Problem], problemRank[b.Problem.Problem]))
		if c == 0 && a.Problem.Problem == ProblemUnadmitted {
			c = cmp.Or(a.ref.Compare(b.ref), cmp.Compare(a.Role, b.Role))
		}
		return c
	})
	for _, p := range all {
		if len(w.ans.Broken) >= w.limit {
			w.ans.Truncated = true
			return
		}
		w.ans.Broken = append(w.ans.Broken, p.Problem)
	}
}

// found is a problem with the keys it sorts by: its object's, and (unadmitted) its target's.
type found struct {
	Problem
	key, ref mesh.Key
}

var problemRank = map[string]int{ProblemDangling: 0, ProblemNotReady: 1, ProblemUnmatched: 2, ProblemUnadmitted: 3}

// shown is a key as the caller may see it.
func (w *walker) shown(k mesh.Key) string {
	if !w.visible(k.Namespace) {
		return "(hidden)"
	}
	return k.String()
}

func reason(r *mesh.Readiness) string {
	if r.Reason == "" {
		return ""
	}
	return " (" + r.Reason + ")"
}

// unmatched reports an EventType whose events nothing takes from its Broker or channel.
func (w *walker) unmatched(k mesh.Key, n Node) (Problem, bool) {
	if n.Reference == nil {
		return Problem{}, false // an EventType that names no Broker or channel describes, it routes nothing
	}
	ref := *n.Reference
	carrier, ok := w.g.Node(ref)
	if !ok {
		return Problem{Problem: ProblemDangling, Key: k.String(), Role: RoleReference, Ref: w.shown(ref),
			Detail: fmt.Sprintf("its reference names %s, which does not exist", w.shown(ref))}, true
	}
	var kind mesh.EntityKind
	var role mesh.EdgeRole
	switch carrier.Kind {
	case mesh.KindBroker:
		kind, role = mesh.KindTrigger, mesh.RoleBroker
	case mesh.KindSubscribable:
		kind, role = mesh.KindSubscription, mesh.RoleChannel
	default:
		return Problem{}, false
	}
	if len(w.consumersOf(ref, carrier, kind, role, &k)) > 0 {
		return Problem{}, false
	}
	what := "no Trigger on " + w.shown(ref) + " can match its events"
	if kind == mesh.KindSubscription {
		what = "no Subscription takes events from " + w.shown(ref)
	}
	return Problem{Problem: ProblemUnmatched, Key: k.String(), Ref: w.shown(ref), Detail: what}, true
}

// unadmitted reports the senders to k, of the namespaces the caller sees, that the
// EventPolicies applying to k do not admit.
func (w *walker) unadmitted(k mesh.Key, kind mesh.EntityKind, add func(found)) {
	policies := w.policiesOf(k, kind)
	if len(policies) == 0 {
		return
	}
	for _, s := range w.senders(k) {
		sender := mesh.MustParseKey(s.Key)
		if !w.visible(sender.Namespace) || admitted(policies, s.Key) != No.String() {
			continue
		}
		add(found{key: sender, ref: k, Problem: Problem{Problem: ProblemUnadmitted, Key: s.Key, Role: s.Role, Ref: w.shown(k),
			Detail: fmt.Sprintf("sends to %s, and no EventPolicy that applies there admits it", w.shown(k))}})
	}
}
