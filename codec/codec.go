package codec

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/cloudevents/sdk-go/v2/types"

	"github.com/event-mesh-broadcaster/broadcaster/mesh"
)

// DefaultSource is the events' source when none is configured.
const DefaultSource = "/event-mesh-broadcaster"

const contentTypeJSONUTF = "application/json; charset=utf-8"

// ErrInvalidOption marks an EncoderOption with a value it cannot take.
var ErrInvalidOption = errors.New("invalid option")

// ErrInvalidEvent marks events that are not valid mesh deltas; errors say which part is wrong.
var ErrInvalidEvent = errors.New("invalid mesh-delta event")

// Encoder builds mesh-delta events for one source. It is on every transport's hot path, so it
// assembles the data and the event context directly instead of going through reflection.
type Encoder struct {
	base    string       // the configured source, without the cluster
	source  types.URIRef // the events' source, parsed once
	cluster string
}

// EncoderOption configures an Encoder. (The codec stays without config/option, so the
// consumer library compiles no more of this module than the contract and the codec.)
type EncoderOption func(*Encoder) error

// WithCluster names the cluster the events are about (mesh.CheckCluster says which names
// are valid): every event carries it in the mesh.ExtensionCluster extension and as the last
// segment of its source (mesh.ClusterSource).
func WithCluster(name string) EncoderOption {
	return func(e *Encoder) error {
		if err := mesh.CheckCluster(name); err != nil {
			return fmt.Errorf("%w: cluster %w", ErrInvalidOption, err)
		}
		e.cluster = name
		return nil
	}
}

// NewEncoder returns an encoder whose events carry source (a URI-reference naming the
// broadcaster; empty means DefaultSource). Without WithCluster the events name no cluster.
func NewEncoder(source string, opts ...EncoderOption) (*Encoder, error) {
	if source == "" {
		source = DefaultSource
	}
	if err := CheckSource(source); err != nil {
		return nil, fmt.Errorf("event source %w", err)
	}
	e := &Encoder{base: source}
	for _, opt := range opts {
		if err := opt(e); err != nil {
			return nil, err
		}
	}
	u, err := parseSource(mesh.ClusterSource(source, e.cluster))
	if err != nil {
		return nil, err
	}
	e.source = u
	return e, nil
}

func parseSource(source string) (types.URIRef, error) {
	u, err := url.Parse(source)
	if err != nil {
		return types.URIRef{}, fmt.Errorf("event source %q is not a URI-reference: %w", source, err)
	}
	return types.URIRef{URL: *u}, nil
}

// Cluster is the cluster the encoder's events name ("" for none). Transports that keep
// state per broadcaster (MQTT topics, NATS subjects and keys, snapshot envelopes) take it
// from here, so every carrier names the cluster the events do.
func (e *Encoder) Cluster() string { return e.cluster }

// sourceOf is the source and cluster of the event of c: the change's own cluster when it
// names one (a change decoded from another broadcaster's event), else the encoder's.
func (e *Encoder) sourceOf(c mesh.Change) (types.URIRef, string, error) {
	if c.Cluster == "" || c.Cluster == e.cluster {
		return e.source, e.cluster, nil
	}
	if err := mesh.CheckCluster(c.Cluster); err != nil {
		return types.URIRef{}, "", fmt.Errorf("change %s: cluster %w", c.Key, err)
	}
	u, err := parseSource(mesh.ClusterSource(e.base, c.Cluster))
	return u, c.Cluster, err
}

// Event encodes c.
func (e *Encoder) Event(c mesh.Change) (event.Event, error) {
	data, err := e.data(c)
	if err != nil {
		return event.Event{}, err
	}
	source, cluster, err := e.sourceOf(c)
	if err != nil {
		return event.Event{}, err
	}
	contentType, subject := mesh.ContentTypeJSON, c.Key.String()
	ev := event.Event{Context: &event.EventContextV1{
		ID: mesh.EventID(c.Epoch, c.Sequence), Type: mesh.TypeOf(c.Kind, c.Op), Source: source,
		Subject: &subject, DataContentType: &contentType,
		Extensions: map[string]any{mesh.ExtensionEpoch: c.Epoch, mesh.ExtensionSequence: int32(c.Sequence)},
	}, DataEncoded: data}
	if cluster != "" {
		ev.Context.(*event.EventContextV1).Extensions[mesh.ExtensionCluster] = cluster
	}
	return ev, nil
}

// Structured encodes c straight to structured-mode JSON: what EncodeStructured(Event(c))
// gives (the same members, tested), without building the event. MQTT and NATS payloads use it.
func (e *Encoder) Structured(c mesh.Change) ([]byte, error) {
	data, err := e.data(c)
	if err != nil {
		return nil, err
	}
	source, cluster, err := e.sourceOf(c)
	if err != nil {
		return nil, err
	}
	key := c.Key.String()
	b := make([]byte, 0, len(data)+len(key)+len(c.Epoch)*2+256)
	b = append(b, `{"specversion":"1.0","id":`...)
	b = mesh.AppendJSONString(b, mesh.EventID(c.Epoch, c.Sequence))
	b = append(b, `,"source":`...)
	b = mesh.AppendJSONString(b, source.String())
	b = append(b, `,"type":"`...)
	b = append(b, mesh.TypeOf(c.Kind, c.Op)...)
	b = append(b, `","subject":`...)
	b = mesh.AppendJSONString(b, key)
	b = append(b, `,"datacontenttype":"application/json",`...)
	if cluster != "" {
		b = append(b, `"meshcluster":`...)
		b = mesh.AppendJSONString(b, cluster)
		b = append(b, ',')
	}
	b = append(b, `"meshepoch":`...)
	b = mesh.AppendJSONString(b, c.Epoch)
	b = append(b, `,"meshseq":`...)
	b = strconv.AppendUint(b, c.Sequence, 10)
	b = append(b, `,"data":`...)
	b = append(b, data...)
	return append(b, '}'), nil
}

// data is the event payload: the same bytes json.Marshal(mesh.EventData{...}) gives for entities made by
// json.Marshal (tested), without reflection or re-compacting the entity.
func (e *Encoder) data(c mesh.Change) ([]byte, error) {
	if c.Sequence == 0 || c.Sequence > mesh.MaxSequence {
		return nil, fmt.Errorf("change %s: sequence %d outside 1..%d", c.Key, c.Sequence, mesh.MaxSequence)
	}
	if !json.Valid(c.Entity) {
		return nil, fmt.Errorf("change %s: entity is not valid JSON", c.Key)
	}
	key := c.Key.String()
	data := make([]byte, 0, len(c.Entity)+len(key)+len(c.Epoch)+96)
	data = append(data, `{"key":`...)
	data = mesh.AppendJSONString(data, key)
	data = append(data, `,"kind":"`...)
	data = append(data, c.Kind.String()...)
	data = append(data, `","op":"`...)
	data = append(data, c.Op.String()...)
	data = append(data, `","epoch":`...)
	data = mesh.AppendJSONString(data, c.Epoch)
	data = append(data, `,"sequence":`...)
	data = strconv.AppendUint(data, c.Sequence, 10)
	data = append(data, `,"entity":`...)
	data = append(data, bytes.TrimSpace(c.Entity)...)
	return append(data, '}'), nil
}

// Decode reads a mesh-delta event back into a change, checking every attribute against the
// payload. The change's Previous is always nil (events carry only the new state).
func Decode(ev event.Event) (mesh.Change, error) {
	if err := ev.Validate(); err != nil {
		return mesh.Change{}, fmt.Errorf("%w: %w", ErrInvalidEvent, err)
	}
	fail := func(format string, args ...any) (mesh.Change, error) {
		return mesh.Change{}, fmt.Errorf("%w: event %s: %s", ErrInvalidEvent, ev.ID(), fmt.Sprintf(format, args...))
	}
	kind, op, err := mesh.ParseType(ev.Type())
	kindName := kind.String()
	switch {
	case errors.Is(err, mesh.ErrUnknownKind):
		// A newer broadcaster's kind: decoded for its position, skipped by consumers.
		kind = mesh.KindUnknown
		if kindName, op, err = kindAndOp(ev.Type()); err != nil {
			return fail("%v", err)
		}
	case err != nil:
		return fail("%v", err)
	}
	if ct := ev.DataContentType(); ct != mesh.ContentTypeJSON && ct != contentTypeJSONUTF && ct != "" {
		return fail("datacontenttype %q, want %s", ct, mesh.ContentTypeJSON)
	}
	var d mesh.EventData
	if err := json.Unmarshal(ev.Data(), &d); err != nil {
		return fail("data: %v", err)
	}
	epoch, err := extensionString(ev, mesh.ExtensionEpoch)
	if err != nil {
		return fail("%v", err)
	}
	seq, err := extensionSequence(ev)
	if err != nil {
		return fail("%v", err)
	}
	var cluster string
	if _, named := ev.Extensions()[mesh.ExtensionCluster]; named {
		if cluster, err = extensionString(ev, mesh.ExtensionCluster); err != nil {
			return fail("%v", err)
		}
		if err := mesh.CheckCluster(cluster); err != nil {
			return fail("extension %s: %v", mesh.ExtensionCluster, err)
		}
	}
	ref, err := mesh.ParseKey(d.Key)
	switch {
	case err != nil:
		return fail("data.key: %v", err)
	case d.Kind != kindName || d.Op != op.String():
		return fail("data kind/op %s/%s disagree with type %q", d.Kind, d.Op, ev.Type())
	case d.Key != ev.Subject():
		return fail("data.key %q disagrees with subject %q", d.Key, ev.Subject())
	case d.Epoch != epoch || d.Epoch == "":
		return fail("data.epoch %q disagrees with %s %q", d.Epoch, mesh.ExtensionEpoch, epoch)
	case d.Sequence != seq || seq == 0:
		return fail("data.sequence %d disagrees with %s %d", d.Sequence, mesh.ExtensionSequence, seq)
	}
	if err := checkEntity(d.Entity, ref); err != nil {
		return fail("data.entity: %v", err)
	}
	var entity bytes.Buffer
	if err := json.Compact(&entity, d.Entity); err != nil {
		return fail("data.entity: %v", err)
	}
	return mesh.Change{Epoch: epoch, Sequence: seq, Kind: kind, Op: op, Key: ref, Entity: entity.Bytes(), Cluster: cluster}, nil
}

// kindAndOp splits an event type whose kind is unknown.
func kindAndOp(t string) (kind string, op mesh.Op, err error) {
	kind, opName, _ := strings.Cut(strings.TrimPrefix(t, mesh.TypePrefix), ".")
	if op, err = mesh.ParseOp(opName); err != nil {
		return "", 0, fmt.Errorf("type %q: %w", t, err)
	}
	return kind, op, nil
}

func extensionString(ev event.Event, name string) (string, error) {
	v, ok := ev.Extensions()[name]
	if !ok {
		return "", fmt.Errorf("extension %s is missing", name)
	}
	s, err := types.ToString(v)
	if err != nil {
		return "", fmt.Errorf("extension %s: %w", name, err)
	}
	return s, nil
}

func extensionSequence(ev event.Event) (uint64, error) {
	v, ok := ev.Extensions()[mesh.ExtensionSequence]
	if !ok {
		return 0, fmt.Errorf("extension %s is missing", mesh.ExtensionSequence)
	}
	if s, isString := v.(string); isString { // binary modes carry extensions as text
		n, err := types.ParseInteger(s)
		if err != nil {
			return 0, fmt.Errorf("extension %s: %w", mesh.ExtensionSequence, err)
		}
		v = n
	}
	n, err := types.ToInteger(v)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("extension %s: want a positive integer, got %v", mesh.ExtensionSequence, v)
	}
	return uint64(n), nil
}

// checkEntity requires a JSON object naming the same namespace and name as the key.
func checkEntity(raw json.RawMessage, ref mesh.Key) error {
	if len(bytes.TrimSpace(raw)) == 0 {
		return errors.New("missing")
	}
	var e struct {
		Namespace *string `json:"namespace"`
		Name      *string `json:"name"`
	}
	if err := json.Unmarshal(raw, &e); err != nil {
		return err
	}
	if e.Namespace == nil || e.Name == nil || *e.Namespace != ref.Namespace || *e.Name != ref.Name {
		return fmt.Errorf("namespace/name do not match key %s", ref)
	}
	return nil
}

// EncodeStructured is the structured-mode JSON form of an event (one self-contained document).
// It calls the event's own MarshalJSON: json.Marshal would re-scan its output.
func EncodeStructured(ev event.Event) ([]byte, error) { return ev.MarshalJSON() }

// DecodeStructured reads a structured-mode JSON event and decodes it.
func DecodeStructured(data []byte) (mesh.Change, error) {
	ev := event.New()
	if err := json.Unmarshal(data, &ev); err != nil {
		return mesh.Change{}, fmt.Errorf("%w: %w", ErrInvalidEvent, err)
	}
	return Decode(ev)
}
