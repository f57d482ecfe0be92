package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/event-mesh-broadcaster/broadcaster/codec/consumer"
	"github.com/event-mesh-broadcaster/broadcaster/mesh"
	testkube "github.com/event-mesh-broadcaster/broadcaster/test/kube"
	"github.com/event-mesh-broadcaster/broadcaster/test/testkit"
)

// Three broadcasters elect a leader while changes flow; the leader is killed, the next one
// stopped, then each replica is restarted in turn. Every replica serves the leader's sequence
// space, and a new leader continues it, so a consumer fed by the sink and taking its snapshots
// from any replica ends exact without ever seeing a second epoch, and the sink gets each
// change once: no re-broadcast of the mesh at any failover.
func TestFailoverKeepsOneSequenceSpace(t *testing.T) {
	cfg := testkube.Start(t)
	c := newCluster(t, cfg)
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	const ns = "shop"
	c.mustApply(broker(ns, "orders"), service(ns, "svc", "billing"), trigger(ns, "bill", "orders", "svc"))
	for i := range 100 {
		c.mustApply(eventType(ns, fmt.Sprintf("seed-%d", i), fmt.Sprintf("order.seed.%d", i), "orders", ""))
	}
	listEventTypes := []rbacv1.PolicyRule{{APIGroups: []string{"eventing.knative.dev"}, Resources: []string{"eventtypes"}, Verbs: []string{"list"}}}
	reader := serviceAccountToken(t, client, ns, "reader")
	grantClusterRole(t, client, ns, "reader", listEventTypes)
	// The replicas watch with the admin's certificate and present their ServiceAccount's token
	// to each other, as in a pod.
	self := serviceAccountToken(t, client, "default", "broadcaster")
	grantClusterRole(t, client, "default", "broadcaster", listEventTypes)
	withToken := *cfg
	withToken.BearerToken = self
	kubeconfig := testkube.WriteKubeconfig(t, &withToken)

	replicas := &replicaSet{token: reader}
	sink := newSinkConsumer(t, replicas)
	srv := httptest.NewServer(sink)
	defer srv.Close()
	args := []string{"--kubeconfig", kubeconfig, "--leader-elect", "--leader-election-namespace", "default",
		"--lease-duration", "3s", "--renew-deadline", "2s", "--retry-period", "250ms", "--sink", srv.URL}
	start := func() *process {
		p := startBroadcaster(t, args...)
		replicas.add(p)
		return p
	}
	procs := []*process{start(), start(), start()}
	leaderOf := func(ps []*process, line string) *process {
		for _, p := range ps {
			if strings.Contains(p.Logs(), line) {
				return p
			}
		}
		return nil
	}
	testkit.Eventually(t, "a leader", 60*time.Second, func() bool { return leaderOf(procs, "leading:") != nil })
	first := leaderOf(procs, "leading:")
	waitServing := func(ps ...*process) {
		t.Helper()
		for _, p := range ps {
			testkit.Eventually(t, "a replica to serve the leader's sequence space", 60*time.Second, func() bool {
				status, body, _ := p.get(mesh.PathMesh, reader)
				var s mesh.Snapshot
				return status == http.StatusOK && json.Unmarshal(body, &s) == nil && s.Epoch == sink.epochSeen()
			})
		}
	}
	opening := len(c.freshEntities())
	testkit.Eventually(t, "the sink to receive the opening", 30*time.Second, func() bool { return sink.report().events >= opening })
	waitServing(procs...)

	// Changes flow through everything that follows: one new EventType every 50 ms.
	changes := &changeFlow{c: c, ns: ns}
	stopChanges := changes.run()
	defer stopChanges()

	time.Sleep(time.Second)
	t.Log("SIGKILL the leader")
	first.Signal(syscall.SIGKILL)
	<-first.Exited()
	rest := without(procs, first)
	testkit.Eventually(t, "a second leader", 60*time.Second, func() bool { return leaderOf(rest, "leading:") != nil })
	second := leaderOf(rest, "leading:")
	if !strings.Contains(second.Logs(), "did not hand over") {
		t.Errorf("the second leader took over a killed one without noticing:\n%s", second.Logs())
	}
	time.Sleep(time.Second)

	t.Log("SIGTERM the second leader")
	second.Signal(syscall.SIGTERM)
	<-second.Exited()
	third := without(rest, second)[0]
	testkit.Eventually(t, "a third leader", 60*time.Second, func() bool { return leaderOf([]*process{third}, "leading:") != nil })
	if !strings.Contains(third.Logs(), "after a clean handover") {
		t.Errorf("a stopped leader did not hand over cleanly:\n%s", third.Logs())
	}

	t.Log("restart the replicas one by one")
	live := []*process{third, start(), start()}
	waitServing(live...)
	for i, p := range live {
		p.Signal(syscall.SIGTERM)
		<-p.Exited()
		live[i] = start()
		waitServing(live...)
	}
	stopChanges()

	want := c.freshEntities()
	testkit.Eventually(t, "the consumer to match the cluster", 60*time.Second, func() bool {
		return maps.Equal(sink.entities(), want)
	})
	for _, p := range live {
		_, body, _ := p.get(mesh.PathMesh, reader)
		var s mesh.Snapshot
		if err := json.Unmarshal(body, &s); err != nil || s.Epoch != sink.epochSeen() {
			t.Errorf("replica %s serves epoch %q (%v), the sink got %q", p.addr, s.Epoch, err, sink.epochSeen())
		}
	}
	got := sink.report()
	t.Logf("%d changes made; the sink got %d events (%d of them again) in %d epoch(s), %d re-sent unchanged; the consumer resynced %d times",
		changes.count(), got.events, got.duplicates, len(got.epochs), got.unchanged, got.resyncs)
	if len(got.epochs) != 1 {
		t.Errorf("the sink saw epochs %q, want one", got.epochs)
	}
	if got.unchanged > 0 {
		t.Errorf("%d new events re-sent an entity unchanged (%q): a re-broadcast", got.unchanged, sink.resentEvents())
	}
	// Each new EventType is two entity changes (it, and its Broker's providedEventTypes); a
	// new leader folds those it missed into one batch, and a gap heal sends nothing. Events
	// delivered again (at least once) are not new ones.
	if limit, fresh := 2*changes.count()+2, got.events-got.duplicates-opening; fresh > limit {
		t.Errorf("the sink got %d new events after the opening for %d changes (at most %d)", fresh, changes.count(), limit)
	}
	if status, metrics, _ := live[0].get("/metrics", ""); status != http.StatusOK || !strings.Contains(string(metrics), "process_resident_memory_bytes") {
		t.Errorf("GET /metrics without a token: %d\n%.300s", status, metrics)
	}
	if status, _, _ := live[0].get(mesh.PathMesh, ""); status != http.StatusUnauthorized {
		t.Errorf("GET /v1/mesh without a token: %d, want 401", status)
	}
}

func without(ps []*process, gone *process) []*process {
	var out []*process
	for _, p := range ps {
		if p != gone {
			out = append(out, p)
		}
	}
	return out
}

// changeFlow creates EventTypes one after another until stopped.
type changeFlow struct {
	c  *cluster
	ns string
	mu sync.Mutex
	n  int
}

func (f *changeFlow) run() (stop func()) {
	done, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		for {
			select {
			case <-done:
				return
			case <-time.After(50 * time.Millisecond):
			}
			f.mu.Lock()
			f.n++
			n := f.n
			f.mu.Unlock()
			if _, err := f.c.apply(eventType(f.ns, fmt.Sprintf("flow-%d", n), fmt.Sprintf("order.flow.%d", n), "orders", "")); err != nil {
				f.c.t.Errorf("change %d: %v", n, err)
				return
			}
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { close(done); <-stopped }) }
}

func (f *changeFlow) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.n
}

// replicaSet hands out a random live replica for each snapshot or catch-up.
type replicaSet struct {
	token string
	mu    sync.Mutex
	procs []*process
}

func (r *replicaSet) add(p *process) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.procs = append(r.procs, p)
}

func (r *replicaSet) pick() consumer.Catcher {
	r.mu.Lock()
	defer r.mu.Unlock()
	var live []*process
	for _, p := range r.procs {
		select {
		case <-p.Exited():
		default:
			live = append(live, p)
		}
	}
	p := live[rand.IntN(len(live))]
	return consumer.HTTPSnapshots("http://"+p.addr, r.token, nil).(consumer.Catcher)
}

func (r *replicaSet) Snapshot(ctx context.Context) (mesh.Snapshot, error) {
	return r.pick().Snapshot(ctx)
}

func (r *replicaSet) Deltas(ctx context.Context, epoch string, since uint64) ([]mesh.Change, error) {
	return r.pick().Deltas(ctx, epoch, since)
}

// sinkConsumer is a Knative Trigger's subscriber keeping a codec/consumer replica, and
// counting what the sink receives.
type sinkConsumer struct {
	t       *testing.T
	replica *consumer.Replica

	mu         sync.Mutex
	epochs     []string
	events     int
	last       map[string]string // "kind key" → the entity of its latest event
	unchanged  int
	newest     uint64   // the highest meshseq received
	duplicates int      // events received again
	resent     []string // the events that re-sent an entity unchanged
}

func newSinkConsumer(t *testing.T, snapshots consumer.Snapshotter) *sinkConsumer {
	return &sinkConsumer{t: t, replica: consumer.NewReplica(snapshots), last: map[string]string{}}
}

func (s *sinkConsumer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c, err := testkit.DecodeRequest(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	if len(s.epochs) == 0 || s.epochs[len(s.epochs)-1] != c.Epoch {
		s.epochs = append(s.epochs, c.Epoch)
	}
	s.events++
	k := c.Kind.String() + " " + c.Key.String()
	if c.Sequence <= s.newest { // delivered again (at least once): not a new event
		s.duplicates++
		s.mu.Unlock()
		if err := s.replica.Apply(r.Context(), c); err != nil {
			s.t.Errorf("consumer: %v", err)
		}
		return
	}
	s.newest = c.Sequence
	if c.Op != mesh.OpDeleted && s.last[k] == string(c.Entity) {
		s.unchanged++
		s.resent = append(s.resent, fmt.Sprintf("#%d %s %s", c.Sequence, c.Op, k))
	}
	s.last[k] = string(c.Entity)
	if c.Op == mesh.OpDeleted {
		delete(s.last, k)
	}
	s.mu.Unlock()
	if err := s.replica.Apply(r.Context(), c); err != nil {
		s.t.Errorf("consumer: %v", err)
	}
}

func (s *sinkConsumer) epochSeen() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.epochs) == 0 {
		return ""
	}
	return s.epochs[len(s.epochs)-1]
}

func (s *sinkConsumer) entities() map[string]string {
	out := map[string]string{}
	for id, raw := range s.replica.Entities() {
		out[id.Kind.String()+" "+id.Key.String()] = string(raw)
	}
	return out
}

func (s *sinkConsumer) resentEvents() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.resent)
}

type sinkReport struct {
	epochs                                 []string
	events, duplicates, unchanged, resyncs int
}

func (s *sinkConsumer) report() sinkReport {
	s.mu.Lock()
	defer s.mu.Unlock()
	return sinkReport{epochs: append([]string(nil), s.epochs...), events: s.events,
		duplicates: s.duplicates, unchanged: s.unchanged, resyncs: s.replica.Resyncs()}
}
