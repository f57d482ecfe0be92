package consumer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"

	"github.com/event-mesh-broadcaster/broadcaster/codec"
	"github.com/event-mesh-broadcaster/broadcaster/mesh"
)

// Snapshotter fetches the current snapshot.
type Snapshotter interface {
	Snapshot(ctx context.Context) (mesh.Snapshot, error)
}

// Catcher is a Snapshotter that can also serve the changes after a sequence (GET /v1/deltas),
// so a small gap costs a few events instead of a whole snapshot.
type Catcher interface {
	Snapshotter
	// Deltas returns the changes of epoch after sequence since; ErrGone when they are no longer
	// available (the replica then takes a snapshot).
	Deltas(ctx context.Context, epoch string, since uint64) ([]mesh.Change, error)
}

// ErrGone means the broadcaster no longer has the changes asked for (410 Gone).
var ErrGone = errors.New("changes no longer available")

// HTTPSnapshots reads snapshots from a broadcaster's GET /v1/mesh at baseURL, and catches up
// through GET /v1/deltas. token, when not
// empty, is sent as a bearer token. A nil client means one with a 30s timeout.
func HTTPSnapshots(baseURL, token string, client *http.Client) Snapshotter {
	if client == nil {
		client = &http.Client{Timeout: 30 * time.Second}
	}
	return httpSnapshots{base: strings.TrimSuffix(baseURL, "/"), token: token, client: client}
}

type httpSnapshots struct {
	base, token string
	client      *http.Client
}

var _ Catcher = httpSnapshots{}

func (h httpSnapshots) get(ctx context.Context, path string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.base+path, nil)
	if err != nil {
		return nil, err
	}
	if h.token != "" {
		req.Header.Set("Authorization", "Bearer "+h.token)
	}
	resp, err := h.client.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		err := fmt.Errorf("%s answered %d: %s", h.base+path, resp.StatusCode, strings.TrimSpace(string(body)))
		if resp.StatusCode == http.StatusGone {
			err = fmt.Errorf("%w: %w", ErrGone, err)
		}
		return nil, err
	}
	return resp, nil
}

func (h httpSnapshots) Snapshot(ctx context.Context) (mesh.Snapshot, error) {
	resp, err := h.get(ctx, mesh.PathMesh)
	if err != nil {
		return mesh.Snapshot{}, fmt.Errorf("snapshot: %w", err)
	}
	defer resp.Body.Close()
	var s mesh.Snapshot
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		return mesh.Snapshot{}, fmt.Errorf("snapshot: %w", err)
	}
	return s, nil
}

func (h httpSnapshots) Deltas(ctx context.Context, epoch string, since uint64) ([]mesh.Change, error) {
	q := url.Values{mesh.ParamEpoch: {epoch}, mesh.ParamSince: {strconv.FormatUint(since, 10)}}
	resp, err := h.get(ctx, mesh.PathDeltas+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("deltas: %w", err)
	}
	defer resp.Body.Close()
	var batch []json.RawMessage
	if err := json.NewDecoder(resp.Body).Decode(&batch); err != nil {
		return nil, fmt.Errorf("deltas: %w", err)
	}
	out := make([]mesh.Change, len(batch))
	for i, raw := range batch {
		if out[i], err = codec.DecodeStructured(raw); err != nil {
			return nil, fmt.Errorf("deltas: %w", err)
		}
	}
	return out, nil
}

// EntityID names an entity in a replica.
type EntityID struct {
	Kind mesh.EntityKind
	Key  mesh.Key
}

// Replica is a consumer's copy of the mesh. It is safe for concurrent use.
type Replica struct {
	snapshots Snapshotter

	mu       sync.Mutex
	epoch    string
	seq      uint64
	entities map[EntityID]json.RawMessage
	resyncs  int
	catchUps int
}

// NewReplica returns an empty replica that resyncs from snapshots.
func NewReplica(s Snapshotter) *Replica {
	return &Replica{snapshots: s, entities: map[EntityID]json.RawMessage{}}
}

// ErrSnapshotBehind means snapshots kept lagging behind the events received.
var ErrSnapshotBehind = errors.New("snapshot behind the events")

// Apply applies one change: in order it is applied, seen before it is dropped, and after a gap
// or in a new epoch the replica resyncs from a snapshot first.
func (r *Replica) Apply(ctx context.Context, c mesh.Change) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if c.Epoch == r.epoch && c.Sequence <= r.seq {
		return nil // a duplicate (at-least-once delivery) or already in the snapshot
	}
	if c.Epoch == r.epoch && c.Sequence > r.seq+1 && r.catchUp(ctx, c) {
		return nil
	}
	if c.Epoch != r.epoch || c.Sequence != r.seq+1 {
		if err := r.resync(ctx, c); err != nil {
			return err
		}
		if c.Sequence <= r.seq {
			return nil
		}
	}
	r.apply(c)
	return nil
}

// ApplyEvent decodes and applies a mesh-delta CloudEvent.
func (r *Replica) ApplyEvent(ctx context.Context, ev cloudevents.Event) error {
	c, err := codec.Decode(ev)
	if err != nil {
		return err
	}
	return r.Apply(ctx, c)
}

// ApplyStructured decodes and applies a structured-mode event (MQTT and NATS payloads). An
// empty payload (an MQTT topic cleared after a delete) is ignored.
func (r *Replica) ApplyStructured(ctx context.Context, payload []byte) error {
	if len(payload) == 0 {
		return nil
	}
	c, err := codec.DecodeStructured(payload)
	if err != nil {
		return err
	}
	return r.Apply(ctx, c)
}

func (r *Replica) apply(c mesh.Change) {
	id := EntityID{c.Kind, c.Key}
	if c.Op == mesh.OpDeleted {
		delete(r.entities, id)
	} else {
		r.entities[id] = c.Entity
	}
	r.seq = c.Sequence
}

// catchUp fills a gap from the delta log when the snapshotter offers one; false when it
// could not (no log, the changes expired, or they have not reached it yet), so resync.
func (r *Replica) catchUp(ctx context.Context, c mesh.Change) bool {
	catcher, ok := r.snapshots.(Catcher)
	if !ok {
		return false
	}
	missed, err := catcher.Deltas(ctx, r.epoch, r.seq)
	if err != nil {
		return false
	}
	for _, m := range missed {
		if m.Epoch != r.epoch || m.Sequence != r.seq+1 {
			return false // not what was asked for: start over from a snapshot
		}
		r.apply(m)
		if m.Sequence == c.Sequence {
			break
		}
	}
	if r.seq+1 == c.Sequence {
		r.apply(c)
	}
	if r.seq < c.Sequence {
		return false
	}
	r.catchUps++
	return true
}

// resync replaces the state with a snapshot that includes at least everything before c,
// retrying while the snapshot lags behind (the event may arrive before the snapshot has it).
func (r *Replica) resync(ctx context.Context, c mesh.Change) error {
	var s mesh.Snapshot
	for attempt := 0; ; attempt++ {
		var err error
		s, err = r.snapshots.Snapshot(ctx)
		if err != nil {
			return err
		}
		if s.Epoch == c.Epoch && s.Sequence+1 >= c.Sequence {
			break
		}
		if attempt == 20 {
			return fmt.Errorf("%w: event %s-%d, snapshot %s-%d", ErrSnapshotBehind, c.Epoch, c.Sequence, s.Epoch, s.Sequence)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Duration(attempt+1) * 50 * time.Millisecond):
		}
	}
	r.load(s)
	return nil
}

func (r *Replica) load(s mesh.Snapshot) {
	r.entities = entitiesOf(s.Mesh)
	r.epoch, r.seq = s.Epoch, s.Sequence
	r.resyncs++
}

// Resync takes a snapshot now (a consumer's cold start).
func (r *Replica) Resync(ctx context.Context) error {
	s, err := r.snapshots.Snapshot(ctx)
	if err != nil {
		return err
	}
	r.Load(s)
	return nil
}

func entitiesOf(m mesh.EventMesh) map[EntityID]json.RawMessage {
	out := map[EntityID]json.RawMessage{}
	put := func(kind mesh.EntityKind, key mesh.Key, v any) {
		data, _ := json.Marshal(v) // the mesh types marshal the same bytes the broadcaster sent
		out[EntityID{kind, key}] = data
	}
	for _, b := range m.Brokers {
		put(mesh.KindBroker, b.Key(), b)
	}
	for _, e := range m.EventTypes {
		put(mesh.KindEventType, e.Key(), e)
	}
	for _, s := range m.Sources {
		put(mesh.KindSource, s.Key(), s)
	}
	for _, s := range m.Subscribables {
		put(mesh.KindSubscribable, s.Key(), s)
	}
	return out
}

// Position is the epoch and sequence the replica is at.
func (r *Replica) Position() (epoch string, sequence uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.epoch, r.seq
}

// Resyncs counts the snapshots taken.
func (r *Replica) Resyncs() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.resyncs
}

// CatchUps counts the gaps filled from the delta log.
func (r *Replica) CatchUps() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.catchUps
}

// Entities is a copy of the replica's entities.
func (r *Replica) Entities() map[EntityID]json.RawMessage {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[EntityID]json.RawMessage, len(r.entities))
	for k, v := range r.entities {
		out[k] = v
	}
	return out
}

// Mesh is the replica as an EventMesh (sorted like GET /v1/getEventMesh).
func (r *Replica) Mesh() (mesh.EventMesh, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := mesh.EventMesh{Brokers: []mesh.Broker{}, EventTypes: []mesh.EventType{}, Sources: []mesh.Source{}, Subscribables: []mesh.Subscribable{}}
	ids := make([]EntityID, 0, len(r.entities))
	for id := range r.entities {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b EntityID) int { return a.Key.Compare(b.Key) })
	for _, id := range ids {
		var err error
		data := r.entities[id]
		switch id.Kind {
		case mesh.KindBroker:
			err = appendDecoded(data, &m.Brokers)
		case mesh.KindEventType:
			err = appendDecoded(data, &m.EventTypes)
		case mesh.KindSource:
			err = appendDecoded(data, &m.Sources)
		case mesh.KindSubscribable:
			err = appendDecoded(data, &m.Subscribables)
		}
		if err != nil {
			return mesh.EventMesh{}, fmt.Errorf("entity %s: %w", id.Key, err)
		}
	}
	m.Sort()
	return m, nil
}

func appendDecoded[T any](data []byte, list *[]T) error {
	var v T
	if err := json.Unmarshal(data, &v); err != nil {
		return err
	}
	*list = append(*list, v)
	return nil
}
