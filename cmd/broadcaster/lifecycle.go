package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"golang.org/x/sync/errgroup"

	"github.com/event-mesh-broadcaster/broadcaster/transports/ha"
)

// runnable is one piece of the process that runs until its context ends: the source, the HTTP
// server, the publishing side. As with controller-runtime's runnables, the ones that run on
// the leader only say so once, here, and nothing else needs to know which they are.
type runnable struct {
	name string
	// run returns when ctx ends (nil) or when the runnable cannot go on.
	run func(ctx context.Context) error
	// lead, instead of run, makes a leader-only runnable: it runs while this replica leads
	// (always, without an elector), told how the term began, until ctx ends (with cause
	// ha.ErrLeadershipLost when the lease was lost).
	lead func(ctx context.Context, term ha.Term) error
}

// leaderElector takes turns at leading: while this replica holds the lease it calls lead,
// which returns when the lease is lost (leadCtx ends with ha.ErrLeadershipLost) or when it
// gives the lease up.
type leaderElector interface {
	Run(ctx context.Context, lead func(leadCtx context.Context, term ha.Term)) error
}

var _ leaderElector = (*ha.HA)(nil)

// runAll runs the runnables until ctx ends or one of them fails. Without an elector this process
// always leads, in the first epoch of its hub, and every runnable runs at once; with one, the
// elector runs the leader-only ones during each term. (Order does not matter: publishers read
// the change log, which keeps the batch that opened the epoch for them.)
func runAll(ctx context.Context, runnables []runnable, elector leaderElector, log *slog.Logger) error {
	g, ctx := errgroup.WithContext(ctx)
	var leading []runnable
	for _, p := range runnables {
		if p.lead != nil {
			leading = append(leading, p)
			if elector == nil {
				g.Go(func() error { return named(p, p.lead(ctx, ha.Term{})) })
			}
			continue
		}
		g.Go(func() error { return named(p, p.run(ctx)) })
	}
	if elector != nil {
		g.Go(func() error {
			return elector.Run(ctx, func(leadCtx context.Context, term ha.Term) { runTerm(leadCtx, term, leading, log) })
		})
	}
	return g.Wait()
}

// runTerm runs the leader-only runnables for one term: until leadCtx ends, or until one of them
// returns, which gives the lease up (the others then stop as if it was lost).
func runTerm(leadCtx context.Context, term ha.Term, leading []runnable, log *slog.Logger) {
	ctx, cancel := context.WithCancelCause(leadCtx)
	defer cancel(nil)
	done := make(chan error, len(leading))
	for _, p := range leading {
		go func() { done <- named(p, p.lead(ctx, term)) }()
	}
	for range leading {
		if err := <-done; err != nil {
			log.Error("cannot lead; giving the lease up", "err", err)
		}
		cause := context.Cause(leadCtx)
		if cause == nil {
			cause = ha.ErrLeadershipLost
		}
		cancel(cause)
	}
}

func named(p runnable, err error) error {
	if err == nil || errors.Is(err, context.Canceled) {
		return nil
	}
	return fmt.Errorf("%s: %w", p.name, err)
}
