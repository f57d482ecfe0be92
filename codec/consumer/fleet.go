package consumer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"sync"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/event-mesh-broadcaster/broadcaster/codec"
	"github.com/event-mesh-broadcaster/broadcaster/mesh"
)

// Fleet is a consumer's copy of the meshes of several clusters, whose broadcasters share one
// broker (events.cluster names each): one Replica per cluster, each following its own
// cluster's epochs and sequences and resyncing from its own cluster's broadcaster, so a gap or
// a new epoch of one cluster costs the others nothing. It is safe for concurrent use; changes
// of different clusters are applied concurrently.
type Fleet struct {
	snapshots func(cluster string) (Snapshotter, error)

	mu       sync.Mutex
	replicas map[string]*Replica
}

// FleetEntityID names an entity in a Fleet: keys are unique within a cluster only.
type FleetEntityID struct {
	Cluster string
	EntityID
}

// ErrUnknownCluster means a Fleet was given a change of a cluster it has no snapshots for.
var ErrUnknownCluster = errors.New("unknown cluster")

// ErrOtherCluster means a broadcaster answered for another cluster than the one asked about:
// snapshots is pointed at the wrong broadcaster.
var ErrOtherCluster = errors.New("snapshot of another cluster")

// NewFleet returns an empty fleet. snapshots gives the Snapshotter of a cluster's broadcaster
// (HTTPSnapshots of its URL, natsconsumer.Snapshots of its NATSClusterResyncSubject), or an
// error (wrap ErrUnknownCluster) for a cluster the fleet must not follow; a change of such a
// cluster is refused. A change that names no cluster is the cluster "".
func NewFleet(snapshots func(cluster string) (Snapshotter, error)) *Fleet {
	return &Fleet{snapshots: snapshots, replicas: map[string]*Replica{}}
}

// HTTPFleet follows the broadcasters of the clusters in baseURLs (cluster → the URL of its
// broadcaster's endpoints), each asked with token (when not empty), as HTTPSnapshots does.
func HTTPFleet(baseURLs map[string]string, token string) *Fleet {
	urls := maps.Clone(baseURLs)
	return NewFleet(func(cluster string) (Snapshotter, error) {
		u, ok := urls[cluster]
		if !ok {
			return nil, fmt.Errorf("%w %q: no broadcaster URL for it", ErrUnknownCluster, cluster)
		}
		return HTTPSnapshots(u, token, nil), nil
	})
}

// Replica is the replica of cluster, created on first use; nil with an error when the fleet
// has no snapshots for that cluster.
func (f *Fleet) Replica(cluster string) (*Replica, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r, ok := f.replicas[cluster]; ok {
		return r, nil
	}
	s, err := f.snapshots(cluster)
	if err != nil {
		return nil, err
	}
	r := NewReplica(clusterSnapshots(s, cluster))
	f.replicas[cluster] = r
	return r, nil
}

// Apply applies c to the replica of its cluster (c.Cluster), as Replica.Apply does.
func (f *Fleet) Apply(ctx context.Context, c mesh.Change) error {
	r, err := f.Replica(c.Cluster)
	if err != nil {
		return err
	}
	return r.Apply(ctx, c)
}

// Hold takes c, an entity's latest state from a bucket every cluster writes (a NATS KV
// bucket's entry), into the replica of its cluster, as Replica.Hold does; Listed places them.
func (f *Fleet) Hold(c mesh.Change) error {
	r, err := f.Replica(c.Cluster)
	if err != nil {
		return err
	}
	r.Hold(c)
	return nil
}

// Listed ends a listing of latest states (Hold): each cluster's replica takes its position,
// as Replica.Listed does. A consumer's cold start from the shared KV bucket:
// natsconsumer.Follow with Entity Fleet.Hold, Listed Fleet.Listed and Change Fleet.Apply.
func (f *Fleet) Listed() {
	for _, c := range f.Clusters() {
		r, _ := f.Replica(c)
		r.Listed()
	}
}

// ApplyEvent decodes and applies a mesh-delta CloudEvent.
func (f *Fleet) ApplyEvent(ctx context.Context, ev event.Event) error {
	c, err := codec.Decode(ev)
	if err != nil {
		return err
	}
	return f.Apply(ctx, c)
}

// ApplyStructured decodes and applies a structured-mode event; an empty payload is ignored.
func (f *Fleet) ApplyStructured(ctx context.Context, payload []byte) error {
	if len(payload) == 0 {
		return nil
	}
	c, err := codec.DecodeStructured(payload)
	if err != nil {
		return err
	}
	return f.Apply(ctx, c)
}

// Resync takes a snapshot of every cluster named now (a consumer's cold start), each into its
// replica; it returns every cluster's error joined.
func (f *Fleet) Resync(ctx context.Context, clusters ...string) error {
	var errs []error
	for _, c := range clusters {
		r, err := f.Replica(c)
		if err == nil {
			err = r.Resync(ctx)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("cluster %q: %w", c, err))
		}
	}
	return errors.Join(errs...)
}

// Watch follows GET /v1/watch of cluster's broadcaster at baseURL into the cluster's replica
// until ctx ends, as Replica.Watch does (run one per cluster, each in its own goroutine). A
// snapshot or a change of another cluster ends it with ErrOtherCluster, leaving the replica as
// it was: baseURL is another cluster's broadcaster.
func (f *Fleet) Watch(ctx context.Context, cluster, baseURL, token string, client *http.Client) error {
	r, err := f.Replica(cluster)
	if err != nil {
		return err
	}
	other := func(what, of string) error {
		return fmt.Errorf("%w: %s follows cluster %q, its %s is of %q", ErrOtherCluster, baseURL, cluster, what, of)
	}
	epoch, seq := r.Position()
	return Follow(ctx, baseURL, token, client, Stream{
		Epoch:    epoch,
		Sequence: seq,
		Snapshot: func(s mesh.Snapshot) error {
			if s.Cluster != cluster {
				return other("snapshot", s.Cluster)
			}
			r.Load(s)
			return nil
		},
		Delta: func(payload []byte) error {
			c, err := codec.DecodeStructured(payload)
			if err != nil {
				return err
			}
			if c.Cluster != cluster {
				return other("change", c.Cluster)
			}
			return r.Apply(ctx, c)
		},
		Position: func(epoch string, seq uint64) error { r.Advance(epoch, seq); return nil },
		OnError:  func(err error) bool { return !errors.Is(err, ErrOtherCluster) },
	})
}

// Clusters are the clusters the fleet holds a replica of, sorted.
func (f *Fleet) Clusters() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Sorted(maps.Keys(f.replicas))
}

// Positions is the epoch and sequence of each cluster's replica.
func (f *Fleet) Positions() map[string]mesh.Position {
	out := map[string]mesh.Position{}
	for _, c := range f.Clusters() {
		r, _ := f.Replica(c)
		epoch, seq := r.Position()
		out[c] = mesh.Position{Epoch: epoch, Sequence: seq}
	}
	return out
}

// Entities is the merged replica: every cluster's entities, keyed by cluster, kind and key.
func (f *Fleet) Entities() map[FleetEntityID]json.RawMessage {
	out := map[FleetEntityID]json.RawMessage{}
	for _, c := range f.Clusters() {
		r, _ := f.Replica(c)
		for id, e := range r.Entities() {
			out[FleetEntityID{Cluster: c, EntityID: id}] = e
		}
	}
	return out
}

// Meshes is each cluster's replica as a Mesh (Replica.Whole).
func (f *Fleet) Meshes() (map[string]mesh.Mesh, error) {
	out := map[string]mesh.Mesh{}
	for _, c := range f.Clusters() {
		r, _ := f.Replica(c)
		m, err := r.Whole()
		if err != nil {
			return nil, fmt.Errorf("cluster %q: %w", c, err)
		}
		out[c] = m
	}
	return out, nil
}

// clusterSnapshots checks that what s answers is cluster's: a snapshot that names another
// cluster, or changes of another cluster, are refused (ErrOtherCluster), so a fleet never
// mixes two clusters' meshes in one replica.
func clusterSnapshots(s Snapshotter, cluster string) Snapshotter {
	checked := checkedSnapshots{s: s, cluster: cluster}
	if c, ok := s.(Catcher); ok {
		return checkedCatcher{checkedSnapshots: checked, c: c}
	}
	return checked
}

type checkedSnapshots struct {
	s       Snapshotter
	cluster string
}

func (c checkedSnapshots) Snapshot(ctx context.Context) (mesh.Snapshot, error) {
	s, err := c.s.Snapshot(ctx)
	if err == nil && s.Cluster != c.cluster {
		return mesh.Snapshot{}, fmt.Errorf("%w: asked about cluster %q, the snapshot is of %q", ErrOtherCluster, c.cluster, s.Cluster)
	}
	return s, err
}

type checkedCatcher struct {
	checkedSnapshots
	c Catcher
}

func (c checkedCatcher) Deltas(ctx context.Context, epoch string, since uint64) ([]mesh.Change, error) {
	changes, err := c.c.Deltas(ctx, epoch, since)
	for _, ch := range changes {
		if ch.Cluster != c.cluster {
			return nil, fmt.Errorf("%w: asked about cluster %q, the changes are of %q", ErrOtherCluster, c.cluster, ch.Cluster)
		}
	}
	return changes, err
}
