package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"os"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"

	"github.com/event-mesh-broadcaster/broadcaster/config"
	"github.com/event-mesh-broadcaster/broadcaster/mesh/hub"
)

// elect campaigns for the Lease until ctx ends; while this replica leads, it publishes. Every
// replica keeps its cache warm and serves snapshots either way. Losing the lease stops
// publishing at once and the replica campaigns again.
func (p *publisher) elect(ctx context.Context, client kubernetes.Interface) error {
	// Only a replica holding the whole mesh may lead: it opens its epoch with all of it.
	if err := wait.PollUntilContextCancel(ctx, 50*time.Millisecond, true, func(context.Context) (bool, error) {
		return p.hub.Ready(), nil
	}); err != nil {
		return nil
	}
	id := identity()
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Name: config.DefaultLeaseName, Namespace: p.cfg.LeaderElectionNamespace},
		Client:     client.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: id},
	}
	log := p.log.With("lease", p.cfg.LeaderElectionNamespace+"/"+config.DefaultLeaseName, "identity", id)
	for ctx.Err() == nil {
		// The elector gets its own context: on shutdown this replica first flushes what it
		// owes, and only then releases the lease to the next leader.
		electCtx, stopElecting := context.WithCancel(context.WithoutCancel(ctx))
		leading := make(chan context.Context, 1)
		le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
			Lock:            lock,
			LeaseDuration:   time.Duration(p.cfg.LeaseDuration),
			RenewDeadline:   time.Duration(p.cfg.RenewDeadline),
			RetryPeriod:     time.Duration(p.cfg.RetryPeriod),
			ReleaseOnCancel: true,
			Name:            "event-mesh-broadcaster",
			Callbacks: leaderelection.LeaderCallbacks{
				OnStartedLeading: func(leadCtx context.Context) { leading <- leadCtx },
				OnStoppedLeading: func() {},
				OnNewLeader: func(who string) {
					if who != id {
						log.Info("following", "leader", who)
					}
				},
			},
		})
		if err != nil {
			stopElecting()
			return err // the configuration was checked by config.Load; this is a bug
		}
		electorDone := make(chan struct{})
		go func() {
			defer close(electorDone)
			le.Run(electCtx)
		}()
		select {
		case leadCtx := <-leading:
			p.lead(ctx, leadCtx, log)
		case <-electorDone:
		case <-ctx.Done():
		}
		stopElecting()
		<-electorDone
		if ctx.Err() == nil {
			// Lost the lease (or could not publish): give the others a fair chance.
			select {
			case <-ctx.Done():
			case <-time.After(time.Duration(p.cfg.RetryPeriod)):
			}
		}
	}
	return nil
}

// lead publishes until the lease is lost (leadCtx) or the broadcaster stops (ctx). It opens a
// new epoch with the whole mesh (docs/protocol.md), so consumers that only read the stream get the
// full state from the new leader too.
func (p *publisher) lead(ctx, leadCtx context.Context, log *slog.Logger) {
	queues, natsPublisher, err := p.open(leadCtx)
	if err != nil {
		log.Error("elected but cannot publish; giving the lease up", "err", err)
		return
	}
	listeners := make([]hub.Listener, len(queues))
	for i, q := range queues {
		listeners[i] = q.Enqueue
	}
	epoch := newEpoch()
	stopListening := p.hub.Restart(epoch, listeners...)
	log.Info("leading: publishing the mesh as a new epoch", "epoch", epoch, "entities", p.hub.Snapshot().Len())

	runCtx, stopRunning := context.WithCancel(context.Background())
	var running sync.WaitGroup
	for _, q := range queues {
		running.Add(1)
		go func() { defer running.Done(); q.Run(runCtx) }()
	}
	if natsPublisher != nil {
		running.Add(1)
		go func() {
			defer running.Done()
			if err := natsPublisher.ServeResync(runCtx, p.hub.Snapshot, p.hub.Ready, 0); err != nil {
				log.Error("nats resync", "err", err)
			}
		}()
	}
	lost := false
	select {
	case <-leadCtx.Done():
		lost = ctx.Err() == nil
	case <-ctx.Done():
	}
	stopListening()
	stopRunning()
	running.Wait()
	if lost {
		// Another replica may lead already: what is still queued is its to publish now.
		log.Warn("lost the lease: stopped publishing")
		for _, q := range queues {
			q.Close(context.Background())
		}
		return
	}
	flush(queues, log)
}

// identity names this replica in the Lease: the pod name, made unique per process.
func identity() string {
	host, _ := os.Hostname()
	b := make([]byte, 4)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go ≥ 1.24)
	return host + "_" + hex.EncodeToString(b)
}
