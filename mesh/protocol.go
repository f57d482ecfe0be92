package mesh

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// Paths of the resync endpoints and their query parameters.
const (
	// PathGetEventMesh serves the EventMesh JSON of the upstream backend (Backstage's plugin).
	PathGetEventMesh = "/v1/getEventMesh"
	// PathMesh serves a Snapshot.
	PathMesh = "/v1/mesh"
	// PathDeltas serves the events after ?since=N of ?epoch=E as a batch.
	PathDeltas = "/v1/deltas"
	// PathWatch streams a Snapshot, then every delta, as Server-Sent Events.
	PathWatch = "/v1/watch"
	// PathLineage answers where an EventType's events go, who sends to an entity and who may,
	// and what is broken (mesh/lineage).
	PathLineage = "/v1/lineage"

	ParamEpoch = "epoch"
	ParamSince = "since"
	// ParamLimit bounds the events of one GET /v1/deltas answer (a page).
	ParamLimit = "limit"
)

// Headers of the contract.
const (
	// HeaderEpoch and HeaderSequence give a snapshot's or a batch's position.
	HeaderEpoch    = "Mesh-Epoch"
	HeaderSequence = "Mesh-Sequence"
	// HeaderChunk numbers the parts of a NATS snapshot reply, "i/n" from 1.
	HeaderChunk = "Mesh-Chunk"
	// HeaderError replaces a NATS snapshot reply's chunks: why there is no snapshot (yet).
	HeaderError = "Mesh-Error"
	// HeaderLastEventID resumes GET /v1/watch after the event it names (a StreamID).
	HeaderLastEventID = "Last-Event-ID"
)

// AcceptWatchStatuses is the Accept header of a GET /v1/watch client that wants to hear "not
// now" as a status code (503 with Retry-After and a Problem body) rather than as what a stock
// EventSource obeys (a stream held open while the mesh loads; a `busy` event with `retry:`
// beyond the caps). Any Accept that names application/json asks for the status codes.
const AcceptWatchStatuses = "text/event-stream, " + ContentTypeJSON

// StreamID is the id of a GET /v1/watch event at sequence seq of epoch ("<epoch>-<seq>", the
// form of EventID): a client that sends back only Last-Event-ID, as an EventSource does, names
// the epoch too, so it never resumes into another one.
func StreamID(epoch string, seq uint64) string { return EventID(epoch, seq) }

// ParseStreamID reads a GET /v1/watch event id: "<epoch>-<sequence>", split at the last "-",
// or a sequence alone (the form of older broadcasters; epoch is then "").
func ParseStreamID(id string) (epoch string, seq uint64, err error) {
	i := strings.LastIndexByte(id, '-')
	if i == 0 {
		return "", 0, fmt.Errorf("event id %q: the epoch before the sequence is empty", id)
	}
	seq, err = strconv.ParseUint(id[i+1:], 10, 64)
	if err != nil {
		return "", 0, fmt.Errorf("event id %q: want <epoch>-<sequence> or a sequence (a non-negative integer)", id)
	}
	if i > 0 {
		epoch = id[:i]
	}
	return epoch, seq, nil
}

// Event names of the GET /v1/watch stream.
const (
	// SSESnapshot carries a Snapshot; its id is the snapshot's sequence.
	SSESnapshot = "snapshot"
	// SSEDelta carries one structured-mode CloudEvent; its id is the event's meshseq.
	SSEDelta = "delta"
	// SSEPosition carries a Position: the caller's view is complete up to it (the changes
	// in between are in namespaces the caller may not see).
	SSEPosition = "position"
	// SSECutoff ends a stream that fell too far behind; its data is a StreamEnd.
	SSECutoff = "cutoff"
	// SSEShutdown ends every stream when the broadcaster stops; its data is a StreamEnd.
	SSEShutdown = "shutdown"
	// SSEAccess ends a stream whose caller's access changed (revoked, narrowed or widened);
	// its data is a StreamEnd. Reconnect without Last-Event-ID: the new stream starts with a
	// snapshot of the new view (or the request is refused).
	SSEAccess = "access"
	// SSEBusy answers a GET /v1/watch beyond the caps on streams, for a client that did not ask
	// for status codes (AcceptWatchStatuses): the response is a 200 stream of `retry:` and this
	// one event (a StreamEnd), and ends, so an EventSource comes back by itself after the delay.
	SSEBusy = "busy"
)

// Reconnection delays a GET /v1/watch stream sets with `retry:` (milliseconds).
const (
	// RetryStream opens every stream: after it ends (a shutdown, a cutoff, a cut connection),
	// an EventSource reconnects after a second.
	RetryStream = 1000
	// RetryBusy is the delay of a SSEBusy answer.
	RetryBusy = 5000
)

// Reasons of a 410 Gone from GET /v1/deltas.
const (
	GoneExpired = "expired" // the events asked for left the bounded log
	GoneEpoch   = "epoch"   // the epoch asked for is not the current one
)

// Snapshot is the whole mesh after exactly Sequence events of Epoch (GET /v1/mesh, the
// watch stream's first event, a NATS snapshot reply).
type Snapshot struct {
	Epoch    string `json:"epoch"`
	Sequence uint64 `json:"sequence"`
	// Cluster names the broadcaster's cluster (events.cluster); empty when it has none.
	Cluster string `json:"cluster,omitempty"`
	Mesh    Mesh   `json:"mesh"`
}

// RawSnapshot is a Snapshot as it was sent: each entity the JSON it was published as. A
// follower loads it (mesh/engine.NewMirror) to hold exactly what its leader published, byte for
// byte, which a decoded Snapshot would not keep.
type RawSnapshot struct {
	Epoch    string  `json:"epoch"`
	Sequence uint64  `json:"sequence"`
	Cluster  string  `json:"cluster,omitempty"`
	Mesh     RawMesh `json:"mesh"`
}

// RawMesh is a Mesh with each entity kept as its JSON, by list name (EntityKind.List).
type RawMesh map[string][]json.RawMessage

// SnapshotEnvelope returns what goes before and after an EventMesh JSON to make it a Snapshot,
// so a producer can stream a mesh it already holds as JSON.
func SnapshotEnvelope(epoch string, seq uint64) (head, tail string) {
	return `{"epoch":` + quote(epoch) + `,"sequence":` + strconv.FormatUint(seq, 10) + `,"mesh":`, "}"
}

// Position is a place in the stream of changes.
type Position struct {
	Epoch    string `json:"epoch"`
	Sequence uint64 `json:"sequence"`
}

// StreamEnd is the data of the events that end a watch stream.
type StreamEnd struct {
	Reason string `json:"reason"`
	// Sequence is the id of the last event sent. On a shutdown it is the broadcaster's last
	// change: a follower holding it has all of them.
	Sequence uint64 `json:"sequence,omitempty"`
}

// Problem is the body of every error response.
type Problem struct {
	Error string `json:"error"`
	// Reason is GoneExpired or GoneEpoch on a 410.
	Reason string `json:"reason,omitempty"`
}

// MQTTStatusTopic is where a broadcaster keeps its MQTTStatus, retained: "online" while it
// publishes, "offline" after a clean stop or (as its Last Will) when its connection died. It is
// beside <prefix>/#, so a subscriber to the entities never mistakes it for one.
func MQTTStatusTopic(prefix string) string { return prefix + "-status" }

// MQTTInfoTopic is where a broadcaster keeps its MQTTInfo, retained, updated after each batch.
func MQTTInfoTopic(prefix string) string { return prefix + "-info" }

// MQTT status values.
const (
	StatusOnline  = "online"
	StatusOffline = "offline"
)

// MQTTStatus is the payload of the status topic. Epoch tells incarnations apart: a will of an
// older epoch is stale, and the broadcaster publishes its own status again over it.
type MQTTStatus struct {
	State string `json:"state"`
	Epoch string `json:"epoch"`
}

// MQTTInfo is the payload of the info topic: where the publisher is.
type MQTTInfo struct {
	Epoch    string `json:"epoch"`
	Sequence uint64 `json:"sequence"`
	Entities int    `json:"entities"`
	Version  string `json:"version"`
}

// NATSResyncSubject is where snapshot requests go for a subject prefix. It is outside
// <prefix>.>, so a stream on the deltas never captures the requests.
func NATSResyncSubject(prefix string) string { return prefix + "-resync" }

func quote(s string) string {
	b, _ := json.Marshal(s) // strings always marshal
	return string(b)
}
