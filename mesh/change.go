package mesh

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// EntityKind names the entity lists of the mesh. The names appear in event types
// (dev.knative.eventmesh.<kind>.<op>) and in event data. The first four are the upstream
// backend's lists (GET /v1/getEventMesh); the others are the rest of the Knative event graph,
// additive everywhere else. A consumer skips the events of kinds it does not know
// (ErrUnknownKind), so kinds can be added without breaking older consumers.
type EntityKind uint8

// Entity kinds, in the order of the mesh's JSON lists.
const (
	KindBroker EntityKind = iota
	KindEventType
	KindSource
	KindSubscribable
	KindTrigger
	KindSubscription
	KindSequence
	KindParallel
	KindEventTransform
	KindRequestReply
	KindEventPolicy
	KindJobSink
	KindIntegrationSink
	KindSink

	// KindUnknown stands for a kind this version does not know (a newer broadcaster's): a
	// decoded change of such a kind carries it, and consumers skip the change while its
	// sequence still counts.
	KindUnknown EntityKind = 255
)

// entityKindInfo is what the contract fixes about an entity kind.
type entityKindInfo struct {
	name     string // in event types and event data
	list     string // the JSON list of a snapshot's mesh
	title    string // for people: logs, tail, the page
	upstream bool   // a list of the upstream backend's GET /v1/getEventMesh
	// enforces: Knative checks EventPolicies on what is sent to objects of the kind (its
	// addressables); other receivers (a Service) check nothing of them.
	enforces bool
}

// entityKinds is indexed by EntityKind. It is never written to.
var entityKinds = [...]entityKindInfo{
	KindBroker:          {"broker", "brokers", "Broker", true, true},
	KindEventType:       {"eventtype", "eventTypes", "EventType", true, false},
	KindSource:          {"source", "sources", "source", true, false},
	KindSubscribable:    {"subscribable", "subscribables", "channel", true, true},
	KindTrigger:         {"trigger", "triggers", "Trigger", false, false},
	KindSubscription:    {"subscription", "subscriptions", "Subscription", false, false},
	KindSequence:        {"sequence", "sequences", "Sequence", false, true},
	KindParallel:        {"parallel", "parallels", "Parallel", false, true},
	KindEventTransform:  {"eventtransform", "eventTransforms", "EventTransform", false, true},
	KindRequestReply:    {"requestreply", "requestReplies", "RequestReply", false, true},
	KindEventPolicy:     {"eventpolicy", "eventPolicies", "EventPolicy", false, false},
	KindJobSink:         {"jobsink", "jobSinks", "JobSink", false, true},
	KindIntegrationSink: {"integrationsink", "integrationSinks", "IntegrationSink", false, true},
	KindSink:            {"sink", "sinks", "sink", false, false},
}

// EntityKinds lists every entity kind, in the order of the mesh's JSON lists.
func EntityKinds() []EntityKind {
	out := make([]EntityKind, len(entityKinds))
	for i := range out {
		out[i] = EntityKind(i)
	}
	return out
}

// UpstreamKinds lists the kinds of GET /v1/getEventMesh, in the order of its lists.
func UpstreamKinds() []EntityKind {
	return []EntityKind{KindBroker, KindEventType, KindSource, KindSubscribable}
}

func (k EntityKind) String() string {
	switch {
	case k.Known():
		return entityKinds[k].name
	case k == KindUnknown:
		return "unknown"
	}
	return fmt.Sprintf("EntityKind(%d)", k)
}

// Known reports whether k is a kind of this version of the contract.
func (k EntityKind) Known() bool { return int(k) < len(entityKinds) }

// List is the name of the kind's list in a snapshot's mesh ("brokers", "triggers").
func (k EntityKind) List() string { return entityKinds[k].list }

// Title names the kind for people ("Broker", "channel", "Trigger").
func (k EntityKind) Title() string { return entityKinds[k].title }

// Upstream reports whether the kind is one of the upstream backend's lists.
func (k EntityKind) Upstream() bool { return entityKinds[k].upstream }

// EnforcesPolicies reports whether Knative checks EventPolicies on what is sent to objects of
// the kind (Brokers, channels, flows, EventTransforms, RequestReplies, Knative's sinks).
func (k EntityKind) EnforcesPolicies() bool { return k.Known() && entityKinds[k].enforces }

// ErrUnknownKind marks an entity kind this version does not know: a newer broadcaster's.
// Consumers skip such changes (their sequence still counts).
var ErrUnknownKind = errors.New("unknown entity kind")

// ParseEntityKind is the inverse of EntityKind.String.
func ParseEntityKind(s string) (EntityKind, error) {
	for i, k := range entityKinds {
		if k.name == s {
			return EntityKind(i), nil
		}
	}
	names := make([]string, len(entityKinds))
	for i, k := range entityKinds {
		names[i] = k.name
	}
	return 0, fmt.Errorf("%w %q (want one of %s)", ErrUnknownKind, s, strings.Join(names, ", "))
}

// Op says what happened to an entity.
type Op uint8

// Entity operations; their names appear in event types and event data.
const (
	OpAdded Op = iota
	OpUpdated
	OpDeleted
)

var opNames = []string{"added", "updated", "deleted"}

func (o Op) String() string { return enumName(opNames, o, "Op") }

// ParseOp is the inverse of Op.String.
func ParseOp(s string) (Op, error) { return parseEnum[Op](opNames, s, "op") }

func enumName[T ~uint8](names []string, v T, typeName string) string {
	if int(v) < len(names) {
		return names[v]
	}
	return fmt.Sprintf("%s(%d)", typeName, v)
}

func parseEnum[T ~uint8](names []string, s, what string) (T, error) {
	if i := slices.Index(names, s); i >= 0 {
		return T(i), nil
	}
	return 0, fmt.Errorf("unknown %s %q (want one of %s)", what, s, strings.Join(names, ", "))
}

// Change is one entity change, numbered in its epoch: what one mesh-delta event carries.
type Change struct {
	Epoch    string
	Sequence uint64
	Kind     EntityKind
	Op       Op
	Key      Key
	// Entity is the entity JSON: the new one, or on OpDeleted the last known one.
	Entity json.RawMessage
	// Previous is the JSON before an OpUpdated when the producer knows it; events do not
	// carry it, so a decoded change has none.
	Previous json.RawMessage
	// Cluster is the cluster the change is about, as a decoded event names it
	// (ExtensionCluster; empty when it names none). The broadcaster's own changes leave it
	// empty: its encoder names its cluster.
	Cluster string
}

func (c Change) String() string {
	return fmt.Sprintf("#%d %s %s %s", c.Sequence, c.Kind, c.Op, c.Key)
}

// Batch is the entity changes one batch of object changes caused, in meshseq order: what the
// mesh hub hands its listeners and the change log keeps.
type Batch struct {
	Changes []Change
	// Opens marks the first batch of an epoch. An epoch opens on the source's initial listing
	// or when a leader finds no sequence space to continue, so this batch then holds the whole
	// mesh as added changes from meshseq 1; what a destination kept of earlier epochs and the
	// mesh lacks is stale.
	Opens bool
	// Resets says the sequence space is now at At, with no history before it that this replica
	// holds: a follower loaded the leader's snapshot, or a new leader skipped numbers after a
	// crash. Listeners drop what they kept of it; Changes, if any, follow At.
	Resets bool
	At     Position
}

// Summary says in one line what an update changed, field by field
// (`consumedBy: [] → ["shipping"]`), down into objects and into lists of objects of the same
// length (`edges[1].filter[0].exact.type: "a" → "b"`); it is empty for adds, deletes and updates
// without Previous.
func (c Change) Summary() string {
	if c.Op != OpUpdated {
		return ""
	}
	var parts []string
	diffJSON(&parts, "", c.Previous, c.Entity)
	return strings.Join(parts, "; ")
}

// diffJSON adds "path: before → after" for each difference of two JSON values: members of
// objects, and items of lists of objects of the same length, one by one; anything else whole.
func diffJSON(parts *[]string, path string, before, after json.RawMessage) {
	if bytes.Equal(before, after) {
		return
	}
	var b, a map[string]json.RawMessage
	if before != nil && after != nil && json.Unmarshal(before, &b) == nil && json.Unmarshal(after, &a) == nil && b != nil && a != nil {
		names := slices.Collect(maps.Keys(a))
		for name := range b {
			if _, ok := a[name]; !ok {
				names = append(names, name)
			}
		}
		slices.Sort(names)
		for _, name := range names {
			diffJSON(parts, join(path, name), b[name], a[name])
		}
		return
	}
	var bl, al []json.RawMessage
	if before != nil && after != nil && json.Unmarshal(before, &bl) == nil && json.Unmarshal(after, &al) == nil &&
		len(bl) == len(al) && len(al) > 0 && objects(bl) && objects(al) {
		for i := range al {
			diffJSON(parts, fmt.Sprintf("%s[%d]", path, i), bl[i], al[i])
		}
		return
	}
	*parts = append(*parts, fmt.Sprintf("%s: %s → %s", path, short(before), short(after)))
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

// objects reports whether every item is a JSON object.
func objects(items []json.RawMessage) bool {
	for _, it := range items {
		if t := bytes.TrimSpace(it); len(t) == 0 || t[0] != '{' {
			return false
		}
	}
	return true
}

func short(v json.RawMessage) string {
	const limit = 120
	if v == nil {
		return "∅"
	}
	if len(v) > limit {
		return string(v[:limit]) + "…"
	}
	return string(v)
}
