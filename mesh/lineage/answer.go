package lineage

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/event-mesh-broadcaster/broadcaster/mesh"
)

// Query is one question. Exactly one of EventType, Target and Broken is set. In JSON it reads
// as the query parameters do: {"eventType": "NAMESPACE/NAME"}, {"target": KEY}, {"broken": true}.
type Query struct {
	// EventType asks where events of this EventType go (its key).
	EventType *mesh.Key
	// Target asks who sends to this entity, and who may.
	Target *mesh.Key
	// Broken asks which routes are broken.
	Broken bool
	// Limit caps the paths (or problems) of the answer; 0: DefaultLimit.
	Limit int
}

// queryJSON is a Query as JSON: the parameters' forms.
type queryJSON struct {
	EventType string `json:"eventType,omitempty"`
	Target    string `json:"target,omitempty"`
	Broken    bool   `json:"broken,omitempty"`
	Limit     int    `json:"limit,omitempty"`
}

// MarshalJSON writes the query as its parameters read.
func (q Query) MarshalJSON() ([]byte, error) {
	j := queryJSON{Broken: q.Broken, Limit: q.Limit}
	if q.EventType != nil {
		j.EventType = q.EventType.NamespacedName()
	}
	if q.Target != nil {
		j.Target = q.Target.String()
	}
	return json.Marshal(j)
}

// UnmarshalJSON reads what MarshalJSON writes, checked as ParseQuery checks parameters.
func (q *Query) UnmarshalJSON(data []byte) error {
	var j queryJSON
	if err := json.Unmarshal(data, &j); err != nil {
		return err
	}
	parsed, err := ParseQuery(QueryValues(j.EventType, j.Target, j.Broken, j.Limit))
	if err != nil {
		return err
	}
	*q = parsed
	return nil
}

// DefaultLimit and MaxLimit cap the paths or problems of one answer.
const (
	DefaultLimit = 100
	MaxLimit     = 10000
	// MaxHops ends a path that goes on longer (each hop is an object it had not passed).
	MaxHops = 64
)

// ErrQuery is wrapped by every error of a malformed query.
var ErrQuery = errors.New("lineage query")

// ParseQuery reads the query parameters of GET /v1/lineage: eventType=NAMESPACE/NAME,
// target=KEY or broken, and optionally limit=N.
func ParseQuery(v url.Values) (Query, error) {
	var q Query
	asked := 0
	for name := range v {
		switch name {
		case "eventType", "target", "broken", "limit":
		default:
			return Query{}, fmt.Errorf("%w: unknown parameter %q (eventType, target, broken, limit)", ErrQuery, name)
		}
		if len(v[name]) > 1 {
			return Query{}, fmt.Errorf("%w: %s given %d times", ErrQuery, name, len(v[name]))
		}
		// No Kubernetes name holds other bytes, and the answer's JSON echoes the query: a
		// value that is not UTF-8 would come back as another one.
		if !utf8.ValidString(v[name][0]) {
			return Query{}, fmt.Errorf("%w: %s is not UTF-8", ErrQuery, name)
		}
	}
	if s, ok := v["eventType"]; ok {
		asked++
		ns, name, found := strings.Cut(s[0], "/")
		if !found || ns == "" || name == "" || strings.Contains(name, "/") {
			return Query{}, fmt.Errorf("%w: eventType %q is not NAMESPACE/NAME", ErrQuery, s[0])
		}
		q.EventType = &mesh.Key{Group: mesh.GroupEventing, Kind: mesh.KindEventTypeObject, Namespace: ns, Name: name}
	}
	if s, ok := v["target"]; ok {
		asked++
		k, err := mesh.ParseKey(s[0])
		if err != nil {
			return Query{}, fmt.Errorf("%w: target: %w", ErrQuery, err)
		}
		q.Target = &k
	}
	if s, ok := v["broken"]; ok {
		asked++
		if s[0] != "" && s[0] != "true" && s[0] != "1" {
			return Query{}, fmt.Errorf("%w: broken takes no value (or true), not %q", ErrQuery, s[0])
		}
		q.Broken = true
	}
	if asked != 1 {
		return Query{}, fmt.Errorf("%w: ask exactly one of eventType=NAMESPACE/NAME, target=KEY or broken", ErrQuery)
	}
	if s, ok := v["limit"]; ok {
		n, err := strconv.Atoi(s[0])
		if err != nil || n < 1 || n > MaxLimit {
			return Query{}, fmt.Errorf("%w: limit %q is not a number from 1 to %d", ErrQuery, s[0], MaxLimit)
		}
		q.Limit = n
	}
	return q, nil
}

// QueryValues are the parameters of a query given as fields (empty and zero: not given), for
// ParseQuery to check.
func QueryValues(eventType, target string, broken bool, limit int) url.Values {
	v := url.Values{}
	if eventType != "" {
		v.Set("eventType", eventType)
	}
	if target != "" {
		v.Set("target", target)
	}
	if broken {
		v.Set("broken", "true")
	}
	if limit != 0 {
		v.Set("limit", strconv.Itoa(limit))
	}
	return v
}

// Values is the query as URL parameters (ParseQuery's inverse).
func (q Query) Values() url.Values {
	v := url.Values{}
	switch {
	case q.EventType != nil:
		v.Set("eventType", q.EventType.NamespacedName())
	case q.Target != nil:
		v.Set("target", q.Target.String())
	case q.Broken:
		v.Set("broken", "true")
	}
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	return v
}

func (q Query) limit() int {
	if q.Limit > 0 {
		return min(q.Limit, MaxLimit)
	}
	return DefaultLimit
}

// Answer is the answer to a Query: GET /v1/lineage's body.
type Answer struct {
	Query Query `json:"query"`
	// Epoch and Sequence are the mesh the answer was read from.
	mesh.Position
	// Producers are what sends events of the EventType (sources whose kind declares its type,
	// the objects owning it); eventType queries only.
	Producers []string `json:"producers,omitempty"`
	// Paths: for an eventType query, every route from the EventType on, in order; for a
	// target query, every route that ends at the target.
	Paths []Path `json:"paths"`
	// Senders are what sends to the target directly (target queries only).
	Senders []Sender `json:"senders,omitempty"`
	// Authorization says who may send to the target: "policies" when EventPolicies apply to
	// it (Policies), "default" when none does (the cluster's default-authorization-mode
	// decides). Target queries only.
	Authorization string   `json:"authorization,omitempty"`
	Policies      []Policy `json:"policies,omitempty"`
	// Broken lists the problems found (broken queries).
	Broken []Problem `json:"broken,omitempty"`
	// Truncated says a cap ended the walk: there are more paths or problems than listed.
	Truncated bool `json:"truncated"`
}

// Path ends: why a path stops where it does.
const (
	EndSink     = "sink"     // an object that passes nothing on (a Service, a JobSink, ...)
	EndURI      = "uri"      // an address outside the graph
	EndDangling = "dangling" // a reference to an object that does not exist: a broken route
	EndCycle    = "cycle"    // an object the path already passed: a loop, not followed again
	EndHidden   = "hidden"   // an object in a namespace the caller may not see
	EndNowhere  = "nowhere"  // nothing takes the events on (no Trigger matches, no reference)
	EndTooLong  = "tooLong"  // MaxHops reached
	EndOrigin   = "origin"   // target queries: nothing sends to the first object
)

// Path is one route, hop by hop.
type Path struct {
	// Keys are the entity keys the path passes, in order (a hidden hop's is left out).
	Keys []string `json:"keys"`
	Hops []Hop    `json:"hops"`
	End  string   `json:"end"`
}

// Hop is one object on a path and the edge that led there.
type Hop struct {
	// Key is the object's entity key; empty for a URI or a hidden object.
	Key string `json:"key,omitempty"`
	// URI is an address given instead of a reference.
	URI string `json:"uri,omitempty"`
	// Role is the role of the edge between the previous hop and this one (mesh.Edge.Role),
	// which may point either way: a Trigger's "broker" edge names the Broker it reads from.
	Role  mesh.EdgeRole `json:"role,omitempty"`
	Index *int          `json:"index,omitempty"`
	// Filter is the filter an event passes to get here (a Trigger's), as written; Match is
	// whether the event can pass it: "yes" or "maybe" (routes it cannot pass are not paths).
	Filter json.RawMessage `json:"filter,omitempty"`
	Match  string          `json:"match,omitempty"`
	// DeadLetterSink is where events go whose delivery from this hop fails (an entity key or
	// a URI): the object's own, else the Broker's or channel's it delivers for.
	DeadLetterSink string `json:"deadLetterSink,omitempty"`
	// Changes says the event may become another one here (a reply, a step's or a
	// transform's output): filters past it are evaluated knowing nothing of the event.
	Changes bool `json:"changes,omitempty"`
	// Ready is the object's Ready condition when it is not True.
	Ready *mesh.Readiness `json:"ready,omitempty"`
	// Dangling: the edge names an object that does not exist.
	Dangling bool `json:"dangling,omitempty"`
}

// Sender sends to a target directly.
type Sender struct {
	Key  string        `json:"key"`
	Role mesh.EdgeRole `json:"role"`
	// Via is the Broker or channel a Trigger or Subscription delivers from.
	Via string `json:"via,omitempty"`
	// Admitted, when policies apply: "yes" (a policy names the sender), "maybe" (a policy
	// admits OIDC subjects, which the mesh cannot map to objects) or "no".
	Admitted string `json:"admitted,omitempty"`
}

// Policy is an EventPolicy that applies to the target.
type Policy struct {
	Key string `json:"key"`
	// From lists who it admits: entity keys, or "sub:" and an OIDC subject glob.
	From []string `json:"from"`
	// Filter is what an event must pass, as written.
	Filter json.RawMessage `json:"filter,omitempty"`
}

// Problem kinds.
const (
	ProblemDangling   = "dangling"   // an edge names an object that does not exist
	ProblemNotReady   = "notReady"   // an object on the graph is not Ready
	ProblemUnmatched  = "unmatched"  // an EventType no Trigger (or Subscription) can take
	ProblemUnadmitted = "unadmitted" // a sender no applicable EventPolicy admits
)

// Problem is one broken thing.
type Problem struct {
	Problem string `json:"problem"`
	Key     string `json:"key"`
	// Role and Ref: the dangling edge; Ref is also the target a sender is not admitted to.
	Role   mesh.EdgeRole   `json:"role,omitempty"`
	Ref    string          `json:"ref,omitempty"`
	Ready  *mesh.Readiness `json:"ready,omitempty"`
	Detail string          `json:"detail"`
}
