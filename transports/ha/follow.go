package ha

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/event-mesh-broadcaster/broadcaster/codec"
	"github.com/event-mesh-broadcaster/broadcaster/codec/consumer"
	"github.com/event-mesh-broadcaster/broadcaster/mesh"
)

// Mirror is what following the leader keeps in the leader's sequence space: mesh/hub.Hub
// while it follows.
type Mirror interface {
	// Load replaces the served mesh with the leader's snapshot.
	Load(mesh.RawSnapshot) error
	// Replicate applies the leader's next change; an error means the leader's stream does not
	// continue what the mirror holds.
	Replicate(mesh.Change) error
	// Advance moves the served sequence space to a position without a change.
	Advance(mesh.Position)
	// Position is where the served sequence space is.
	Position() mesh.Position
}

// followMetrics count what following brought (WithMetrics).
type followMetrics struct {
	streaming prometheus.Gauge
	snapshots prometheus.Counter
	changes   prometheus.Counter
}

func newFollowMetrics(r prometheus.Registerer) (*followMetrics, error) {
	m := &followMetrics{
		streaming: prometheus.NewGauge(prometheus.GaugeOpts{Name: "broadcaster_follow_streaming",
			Help: "1 while this follower receives the leader's watch stream; 0 while it leads or cannot reach the leader."}),
		snapshots: prometheus.NewCounter(prometheus.CounterOpts{Name: "broadcaster_follow_snapshots_total",
			Help: "Snapshots of the leader's mesh loaded."}),
		changes: prometheus.NewCounter(prometheus.CounterOpts{Name: "broadcaster_follow_changes_total",
			Help: "Changes of the leader's sequence space replicated."}),
	}
	for _, c := range []prometheus.Collector{m.streaming, m.snapshots, m.changes} {
		if err := r.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// follower follows one leader at a time into a Mirror: it reads the leader's GET /v1/watch.
type follower struct {
	target  Mirror
	client  *http.Client
	token   func() (string, error)
	log     *slog.Logger
	metrics *followMetrics // nil without WithMetrics

	mu       sync.Mutex
	leader   string // base URL of the leader to follow ("": none known, or this replica)
	paused   bool
	stop     context.CancelFunc // ends the current follow
	stopped  chan struct{}      // closed when the current follow has ended
	handover mesh.Position      // where the last leader said it stopped (its shutdown event)
	heard    chan struct{}      // closed and replaced when a shutdown event is heard
	broken   bool               // the connection failed since the last event: no last words will come
	ctx      context.Context    // run's
}

// newFollower returns a follower for target, presenting the token with each request made with
// client. It follows nothing until setLeader.
func newFollower(target Mirror, o options) *follower {
	return &follower{target: target, client: o.client, token: o.token, log: o.log, metrics: o.metrics,
		heard: make(chan struct{})}
}

// run follows the leader named by setLeader until ctx ends.
func (f *follower) run(ctx context.Context) {
	f.mu.Lock()
	f.ctx = ctx
	f.restart()
	f.mu.Unlock()
	<-ctx.Done()
	f.mu.Lock()
	f.halt()
	f.mu.Unlock()
}

// setLeader follows the replica at baseURL from now on ("" for none: this replica leads, or
// nobody does). While paused it is only remembered.
func (f *follower) setLeader(baseURL string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if baseURL == f.leader {
		return
	}
	if baseURL != "" {
		f.handover = mesh.Position{} // what a previous leader said does not speak for this one
	}
	f.leader = baseURL
	f.restart()
}

// pause stops following because this replica is taking over. It first waits up to grace for
// the leader's shutdown event, unless one was heard already or the connection to the leader
// failed; clean reports whether the target holds everything the last leader published: it said
// where it stopped, and the target is there.
func (f *follower) pause(grace time.Duration) (clean bool) {
	deadline := time.NewTimer(grace)
	defer deadline.Stop()
	for waiting := true; waiting && !f.cleanHandover(); {
		f.mu.Lock()
		heard, broken := f.heard, f.broken
		f.mu.Unlock()
		if broken {
			break
		}
		select {
		case <-heard:
		case <-deadline.C:
			waiting = false
		}
	}
	f.mu.Lock()
	f.paused = true
	f.halt()
	f.mu.Unlock()
	return f.cleanHandover()
}

// resume follows again (the term is over).
func (f *follower) resume() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.paused = false
	f.handover = mesh.Position{}
	f.restart()
}

// cleanHandover reports whether the last leader said where it stopped and the target is there.
func (f *follower) cleanHandover() bool {
	f.mu.Lock()
	h := f.handover
	f.mu.Unlock()
	return h.Epoch != "" && h == f.target.Position()
}

// halt ends the current follow and waits for it. f.mu is held, and let go while waiting (the
// follow takes it as it stops); it returns when no follow runs, whatever another caller
// started meanwhile.
func (f *follower) halt() {
	for f.stop != nil {
		stop, stopped := f.stop, f.stopped
		f.stop, f.stopped = nil, nil
		stop()
		f.mu.Unlock()
		<-stopped
		f.mu.Lock()
	}
}

// restart follows f.leader afresh, if there is one to follow. f.mu is held.
func (f *follower) restart() {
	f.halt()
	if f.ctx == nil || f.paused || f.leader == "" {
		return
	}
	ctx, stop := context.WithCancel(f.ctx)
	stopped := make(chan struct{})
	f.stop, f.stopped = stop, stopped
	leader := f.leader
	go func() {
		defer close(stopped)
		f.follow(ctx, leader)
	}()
}

// errDiverged ends a connection whose changes do not continue the target: the next one starts
// from a snapshot.
var errDiverged = errors.New("the leader's stream does not continue what this replica holds")

// follow reads the leader's watch until ctx ends.
func (f *follower) follow(ctx context.Context, leader string) {
	log := f.log.With("leader", leader)
	log.Info("following the leader's sequence space")
	if f.metrics != nil {
		defer f.metrics.streaming.Set(0)
	}
	fresh := false // start from a snapshot rather than the target's position
	for ctx.Err() == nil {
		token, err := f.token()
		if err != nil {
			log.Error("following the leader: no token to present", "err", err)
			sleep(ctx, 5*time.Second)
			continue
		}
		var from mesh.Position
		if !fresh {
			from = f.target.Position()
		}
		fresh = false
		failures := 0
		err = consumer.Follow(ctx, leader, token, f.client, consumer.Stream{
			Epoch:        from.Epoch,
			Sequence:     from.Sequence,
			SnapshotJSON: func(data []byte) error { f.setBroken(false); return f.load(log, data) },
			Delta: func(payload []byte) error {
				f.setBroken(false)
				c, err := codec.DecodeStructured(payload)
				if err != nil {
					return fmt.Errorf("leader's delta: %w", err)
				}
				if err := f.target.Replicate(c); err != nil {
					return fmt.Errorf("%w: %w", errDiverged, err)
				}
				if f.metrics != nil {
					f.metrics.changes.Inc()
				}
				return nil
			},
			Position: func(epoch string, seq uint64) error {
				f.target.Advance(mesh.Position{Epoch: epoch, Sequence: seq})
				return nil
			},
			End: func(event string, end mesh.StreamEnd) {
				if event != mesh.SSEShutdown {
					return
				}
				f.mu.Lock()
				f.handover = mesh.Position{Epoch: f.target.Position().Epoch, Sequence: end.Sequence}
				close(f.heard)
				f.heard = make(chan struct{})
				f.mu.Unlock()
				log.Info("the leader stopped", "sequence", end.Sequence)
			},
			OnError: func(err error) bool {
				f.setBroken(true)
				failures++
				var status consumer.ErrStatus
				switch {
				case errors.Is(err, errDiverged):
					log.Warn("following the leader: starting over from a snapshot", "err", err)
					return false
				case errors.As(err, &status):
					log.Warn("following the leader: refused", "status", status.Code)
					return false // a new token, perhaps
				case failures == 1 || failures%20 == 0:
					log.Warn("following the leader: connection ended", "err", err, "failures", failures)
				}
				return true
			},
		})
		if errors.Is(err, errDiverged) {
			fresh = true
			continue
		}
		if ctx.Err() == nil {
			sleep(ctx, time.Second)
		}
	}
}

func (f *follower) setBroken(broken bool) {
	f.mu.Lock()
	f.broken = broken
	f.mu.Unlock()
	if f.metrics != nil {
		f.metrics.streaming.Set(map[bool]float64{false: 1, true: 0}[broken])
	}
}

func (f *follower) load(log *slog.Logger, data []byte) error {
	var s mesh.RawSnapshot
	if err := json.Unmarshal(data, &s); err != nil {
		return fmt.Errorf("leader's snapshot: %w", err)
	}
	if err := f.target.Load(s); err != nil {
		return fmt.Errorf("leader's snapshot: %w", err)
	}
	if f.metrics != nil {
		f.metrics.snapshots.Inc()
	}
	log.Info("loaded the leader's snapshot", "epoch", s.Epoch, "sequence", s.Sequence)
	return nil
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
