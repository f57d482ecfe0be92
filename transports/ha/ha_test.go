package ha

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/event-mesh-broadcaster/broadcaster/mesh"
	"github.com/event-mesh-broadcaster/broadcaster/test/testkit"
)

// recordingReplica records how high availability drives it. It holds a sequence space at held (none
// when held has no epoch).
type recordingReplica struct {
	mu        sync.Mutex
	held      mesh.Position
	leading   bool
	skipped   uint64
	leads     int
	follows   int
	openEpoch string
}

var _ Replica = (*recordingReplica)(nil)

func (r *recordingReplica) Load(s mesh.RawSnapshot) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.held = mesh.Position{Epoch: s.Epoch, Sequence: s.Sequence}
	return nil
}

func (r *recordingReplica) Replicate(c mesh.Change) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.held = mesh.Position{Epoch: c.Epoch, Sequence: c.Sequence}
	return nil
}

func (r *recordingReplica) Advance(p mesh.Position) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.held = p
}

func (r *recordingReplica) Position() mesh.Position {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.held
}

// Lead continues what it holds with one change, or opens epoch with three entities.
func (r *recordingReplica) Lead(epoch string, skip uint64) (mesh.Position, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.leading, r.skipped = true, skip
	r.leads++
	if r.held.Epoch == "" {
		r.openEpoch = epoch
		r.held = mesh.Position{Epoch: epoch, Sequence: 3}
		return mesh.Position{}, false
	}
	from := r.held
	from.Sequence += skip
	r.held.Sequence = from.Sequence + 1
	return from, true
}

func (r *recordingReplica) Follow() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.leading = false
	r.follows++
}

// Taking over continues the sequence space the replica holds: without a gap when the last
// leader said it stopped where the replica is, after crashSkip numbers otherwise; a replica
// holding none opens an epoch.
func TestTakeOverContinuesTheSequenceSpace(t *testing.T) {
	t.Parallel()
	held := mesh.Position{Epoch: "e", Sequence: 40}
	for _, tc := range []struct {
		name      string
		held      mesh.Position
		lastWords mesh.Position // the shutdown event heard
		want      Term
		wantSkip  uint64
	}{
		{"clean handover", held, held, Term{Continued: true, From: held, HandedOver: true}, 0},
		{"no last words", held, mesh.Position{}, Term{Continued: true, From: mesh.Position{Epoch: "e", Sequence: 40 + crashSkip}}, crashSkip},
		{"last words of a change not held", held, mesh.Position{Epoch: "e", Sequence: 41},
			Term{Continued: true, From: mesh.Position{Epoch: "e", Sequence: 40 + crashSkip}}, crashSkip},
		{"no sequence space", mesh.Position{}, mesh.Position{}, Term{}, crashSkip},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := &recordingReplica{held: tc.held}
			h := testkit.Must(New(r, fake.NewClientset(), "http://me", WithNewEpoch(func() string { return "new" })))
			h.follower.handover = tc.lastWords
			h.follower.broken = tc.lastWords == (mesh.Position{}) // nothing to wait for
			if got := h.takeOver(); got != tc.want {
				t.Errorf("term %+v, want %+v", got, tc.want)
			}
			if !r.leading || r.skipped != tc.wantSkip {
				t.Errorf("leading %v after skipping %d, want leading after %d", r.leading, r.skipped, tc.wantSkip)
			}
			if tc.held.Epoch == "" && r.openEpoch != "new" {
				t.Errorf("opened epoch %q, want the new one", r.openEpoch)
			}
		})
	}
}

// Replicas campaign for one Lease, which carries the leader's URL while it leads; the others
// hear it. A leader that stops releases the Lease after its term ended, and follows again;
// the next replica takes over.
func TestRunLeadsInTurnAndAdvertisesTheLeader(t *testing.T) {
	t.Parallel()
	client := fake.NewClientset()
	type member struct {
		replica *recordingReplica
		ha      *HA
		stop    context.CancelFunc
		done    chan error
		terms   chan Term
		ended   chan error // the cause of each term's end
	}
	start := func(url string) *member {
		m := &member{replica: &recordingReplica{held: mesh.Position{Epoch: "e", Sequence: 7}}, done: make(chan error, 1),
			terms: make(chan Term, 1), ended: make(chan error, 1)}
		m.ha = testkit.Must(New(m.replica, client, url, WithLease("ns", "lease"),
			WithTimings(15*time.Second, 10*time.Second, 100*time.Millisecond))) // no renewal missed under load
		ctx, stop := context.WithCancel(t.Context())
		m.stop = stop
		go func() {
			m.done <- m.ha.Run(ctx, func(ctx context.Context, term Term) {
				select {
				case m.terms <- term:
				default:
				}
				<-ctx.Done()
				select {
				case m.ended <- context.Cause(ctx):
				default:
				}
			})
		}()
		return m
	}
	leaderURL := func() string {
		l, err := client.CoordinationV1().Leases("ns").Get(context.Background(), "lease", metav1.GetOptions{})
		if err != nil {
			return ""
		}
		return l.Annotations[AnnotationLeaderURL]
	}
	following := func(m *member) string {
		m.ha.follower.mu.Lock()
		defer m.ha.follower.mu.Unlock()
		return m.ha.follower.leader
	}

	a := start("http://a")
	var first Term
	select {
	case first = <-a.terms:
	case <-time.After(10 * time.Second):
		t.Fatal("no term")
	}
	if !first.Continued || first.From.Sequence != 7+crashSkip {
		t.Errorf("first term %+v: want it to continue e after a gap (nobody handed over)", first)
	}
	testkit.Eventually(t, "the Lease to carry the leader's URL", 10*time.Second, func() bool { return leaderURL() == "http://a" })
	b := start("http://b")
	testkit.Eventually(t, "the other replica to follow the leader", 10*time.Second, func() bool { return following(b) == "http://a" })
	if following(a) != "" {
		t.Errorf("the leader follows %q", following(a))
	}

	a.stop()
	if cause := <-a.ended; cause == nil || errors.Is(cause, ErrLeadershipLost) {
		t.Errorf("a stopped term ended with %v, want the process's stop", cause)
	}
	if err := <-a.done; err != nil {
		t.Fatal(err)
	}
	a.replica.mu.Lock()
	leads, follows := a.replica.leads, a.replica.follows
	a.replica.mu.Unlock()
	if leads != 1 || follows != 2 { // New makes it follow, and so does the end of its term
		t.Errorf("the stopped leader led %d times and was made to follow %d times, want 1 and 2", leads, follows)
	}
	select {
	case <-b.terms:
	case <-time.After(10 * time.Second):
		t.Fatal("the other replica did not take over")
	}
	testkit.Eventually(t, "the Lease to carry the new leader's URL", 10*time.Second, func() bool { return leaderURL() == "http://b" })
	b.stop()
	<-b.done
}
