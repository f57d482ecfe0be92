package cluster

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/kubernetes"

	testkube "github.com/event-mesh-broadcaster/broadcaster/test/kube"
	"github.com/event-mesh-broadcaster/broadcaster/test/testkit"
)

// BenchmarkFailover runs two broadcasters (built without -race, the default election
// timings) over 10,000 objects with an HTTP sink, then stops the leader cleanly (SIGTERM) and,
// with a replacement beside the new leader, kills that one (SIGKILL). Right after each, one
// EventType (of no Broker) is created. It reports the events the sink receives because of the
// failover (that EventType's: 1, against the whole mesh when every leader opened an epoch)
// and the time from the signal to the sink's first event from the new leader.
func BenchmarkFailover(b *testing.B) {
	cfg := testkube.Start(b)
	admin, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		b.Fatal(err)
	}
	const n = 10_000
	populate(b, fastClient(b, cfg), 0, n)
	self := clusterReaderToken(b, admin)
	withToken := *cfg
	withToken.BearerToken = self
	kubeconfig := testkube.WriteKubeconfig(b, &withToken)
	binary := plainBinary(b)
	sink := &countingSink{}
	srv := httptest.NewServer(sink)
	defer srv.Close()

	start := func() *benchProcess {
		return startBench(b, binary, "--kubeconfig", kubeconfig, "--leader-elect",
			"--leader-election-namespace", "default", "--sink", srv.URL, "--log-level", "info")
	}
	procs := []*benchProcess{start(), start()}
	leader := func() *benchProcess {
		for _, p := range procs {
			if p.exited() == nil && strings.Contains(p.logs.String(), "leading:") {
				return p
			}
		}
		return nil
	}
	entities := benchEntities(n)
	testkit.Eventually(b, "the opening at the sink", 5*time.Minute, func() bool { return sink.count() >= entities })
	b.Logf("opening: %d events for %d entities", sink.count(), entities)

	client := fastClient(b, cfg)
	for i, how := range []struct {
		name string
		sig  syscall.Signal
	}{{"handover", syscall.SIGTERM}, {"crash", syscall.SIGKILL}} {
		old := leader()
		if old == nil {
			b.Fatal("no leader")
		}
		waitFollowing(b, procs, old)
		before := sink.count()
		signalled := time.Now()
		_ = old.cmd.Process.Signal(how.sig)
		et := &unstructured.Unstructured{Object: eventType("bench-failover", fmt.Sprintf("et-%d", i), "failover.test", "missing", "")}
		if i == 0 {
			ensureNamespace(b, admin, "bench-failover")
		}
		if _, err := client.Resource(gvrEventType).Namespace("bench-failover").Create(context.Background(), et, metav1.CreateOptions{}); err != nil {
			b.Fatal(err)
		}
		testkit.Eventually(b, "the new leader's first event", 2*time.Minute, func() bool { return sink.count() > before })
		first := sink.firstAfter(signalled).Sub(signalled)
		time.Sleep(3 * time.Second) // anything else the failover sends
		events := sink.count() - before
		b.Logf("%s (%s): %d events at the sink, the first %v after the signal", how.name, how.sig, events, first.Round(time.Millisecond))
		b.ReportMetric(float64(events), how.name+"-events")
		b.ReportMetric(ms(first), how.name+"-first-publish-ms")
		<-old.done
		procs = append(procs, start()) // the next round has a follower again
	}
	b.ReportMetric(0, "ns/op")
}

// waitFollowing waits until every live replica but the leader follows it.
func waitFollowing(b *testing.B, procs []*benchProcess, leader *benchProcess) {
	for _, p := range procs {
		if p == leader || p.exited() != nil {
			continue
		}
		testkit.Eventually(b, "a follower to load the leader's snapshot", 5*time.Minute, func() bool {
			return strings.Contains(p.logs.String(), "loaded the leader's snapshot")
		})
	}
}

func ensureNamespace(b *testing.B, client kubernetes.Interface, name string) {
	if _, err := client.CoreV1().Namespaces().Create(context.Background(),
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
		b.Fatal(err)
	}
}

// countingSink counts the events it receives, and when each came.
type countingSink struct {
	mu    sync.Mutex
	times []time.Time
}

func (s *countingSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if _, err := testkit.DecodeRequest(r); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	s.times = append(s.times, time.Now())
	s.mu.Unlock()
}

func (s *countingSink) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.times)
}

func (s *countingSink) firstAfter(t time.Time) time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, at := range s.times {
		if at.After(t) {
			return at
		}
	}
	return time.Time{}
}

// benchProcess is a broadcaster run without the test harness's -race build.
type benchProcess struct {
	cmd  *exec.Cmd
	logs *testkit.Buffer
	done chan struct{}
	err  error
}

func startBench(b *testing.B, binary string, args ...string) *benchProcess {
	p := &benchProcess{logs: &testkit.Buffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(binary, append(args, "--listen", testkit.FreeAddr(b))...)
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	p.cmd.Env = append(os.Environ(), "KUBECONFIG=", "KUBERNETES_SERVICE_HOST=")
	if err := p.cmd.Start(); err != nil {
		b.Fatal(err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	b.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.done
		if b.Failed() {
			b.Logf("broadcaster logs:\n%s", p.logs.String())
		}
	})
	return p
}

func (p *benchProcess) exited() error {
	select {
	case <-p.done:
		if p.err == nil {
			return fmt.Errorf("exited")
		}
		return p.err
	default:
		return nil
	}
}
