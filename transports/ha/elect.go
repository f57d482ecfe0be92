package ha

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"os"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/leaderelection"
)

// elector campaigns for the Lease with client-go's leader election. It knows nothing of what
// a leader does: it runs lead for each term.
type elector struct {
	client              kubernetes.Interface
	namespace, name     string // the Lease's
	lease, renew, retry time.Duration
	canLead             func() bool // only a replica holding the whole mesh may lead
	// url is where this replica serves; the Lease carries it while this replica leads.
	url string
	// leader hears where the current leader serves, each time the Lease is read ("" when
	// nobody leads, or this replica does).
	leader func(url string)
	log    *slog.Logger
}

// run campaigns until ctx ends; each time this replica is elected it calls lead with a context
// that ends when the lease is lost (cause ErrLeadershipLost) or ctx ends. Losing the lease
// ends the term at once, and the replica campaigns again. On shutdown the lease is released
// only after lead returned, so a leader first delivers what it owes.
func (e *elector) run(ctx context.Context, lead func(leadCtx context.Context)) error {
	if err := wait.PollUntilContextCancel(ctx, 50*time.Millisecond, true, func(context.Context) (bool, error) {
		return e.canLead(), nil
	}); err != nil {
		return nil
	}
	id := identity()
	lock := &leaseLock{client: e.client.CoordinationV1(), namespace: e.namespace, name: e.name,
		identity: id, url: e.url, observed: func(holder, url string) {
			if e.leader != nil {
				if holder == id {
					url = ""
				}
				e.leader(url)
			}
		}}
	log := e.log.With("lease", e.namespace+"/"+e.name, "identity", id, "url", e.url)
	for ctx.Err() == nil {
		// The elector gets its own context: on shutdown the term ends first, and only then is
		// the lease released to the next leader.
		electCtx, stopElecting := context.WithCancel(context.WithoutCancel(ctx))
		leading := make(chan context.Context, 1)
		le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
			Lock:            lock,
			LeaseDuration:   e.lease,
			RenewDeadline:   e.renew,
			RetryPeriod:     e.retry,
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
			return err // New checked the timings; this is a bug
		}
		electorDone := make(chan struct{})
		go func() {
			defer close(electorDone)
			le.Run(electCtx)
		}()
		select {
		case leaseCtx := <-leading:
			lead(termContext(ctx, leaseCtx))
		case <-electorDone:
		case <-ctx.Done():
		}
		stopElecting()
		<-electorDone
		if ctx.Err() == nil {
			// Lost the lease (or gave it up): give the others a fair chance.
			select {
			case <-ctx.Done():
			case <-time.After(e.retry):
			}
		}
	}
	return nil
}

// termContext ends when the process stops (ctx) or when the lease is lost (leaseCtx, which
// then is the cause: ErrLeadershipLost).
func termContext(ctx, leaseCtx context.Context) context.Context {
	term, end := context.WithCancelCause(context.WithoutCancel(ctx))
	context.AfterFunc(ctx, func() { end(context.Canceled) })
	context.AfterFunc(leaseCtx, func() { end(ErrLeadershipLost) })
	return term
}

// identity names this replica in the Lease: the pod name, made unique per process.
func identity() string {
	host, _ := os.Hostname()
	b := make([]byte, 4)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go ≥ 1.24)
	return host + "_" + hex.EncodeToString(b)
}
