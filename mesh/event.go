package mesh

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Names of the mesh-delta CloudEvent.
const (
	// TypePrefix starts every event type: TypePrefix + <kind> + "." + <op>.
	TypePrefix = "dev.knative.eventmesh."
	// ExtensionEpoch names the sequence space (a string).
	ExtensionEpoch = "meshepoch"
	// ExtensionSequence numbers the event in its epoch (an integer from 1).
	ExtensionSequence = "meshseq"
	// MaxSequence is the largest meshseq: a CloudEvents Integer is 32-bit signed.
	MaxSequence = math.MaxInt32
)

// Content types of the contract.
const (
	// ContentTypeJSON is every event's datacontenttype, and the type of JSON responses.
	ContentTypeJSON = "application/json"
	// ContentTypeEvent is a structured-mode CloudEvent: MQTT and NATS payloads, SSE deltas.
	ContentTypeEvent = "application/cloudevents+json"
	// ContentTypeBatch is a JSON array of structured-mode CloudEvents (GET /v1/deltas).
	ContentTypeBatch = "application/cloudevents-batch+json"
)

// TypeOf is the event type of an entity change, dev.knative.eventmesh.<kind>.<op>.
func TypeOf(kind EntityKind, op Op) string {
	return TypePrefix + kind.String() + "." + op.String()
}

// ParseType is the inverse of TypeOf.
func ParseType(t string) (EntityKind, Op, error) {
	rest, ok := strings.CutPrefix(t, TypePrefix)
	kindName, opName, ok2 := strings.Cut(rest, ".")
	if !ok || !ok2 {
		return 0, 0, fmt.Errorf("type %q is not %s<kind>.<op>", t, TypePrefix)
	}
	kind, err := ParseEntityKind(kindName)
	if err != nil {
		return 0, 0, fmt.Errorf("type %q: %w", t, err)
	}
	op, err := ParseOp(opName)
	if err != nil {
		return 0, 0, fmt.Errorf("type %q: %w", t, err)
	}
	return kind, op, nil
}

// EventID is the id of the event of change seq in epoch: stable across retries (consumers and
// JetStream deduplicate on it), unique across epochs.
func EventID(epoch string, seq uint64) string { return epoch + "-" + strconv.FormatUint(seq, 10) }

// EventData is an event's data: everything a consumer needs, even when a carrier drops the
// CloudEvents attributes.
type EventData struct {
	Key      string          `json:"key"`
	Kind     string          `json:"kind"`
	Op       string          `json:"op"`
	Epoch    string          `json:"epoch"`
	Sequence uint64          `json:"sequence"`
	Entity   json.RawMessage `json:"entity"`
}
