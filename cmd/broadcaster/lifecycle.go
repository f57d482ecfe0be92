package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"golang.org/x/sync/errgroup"

	"github.com/event-mesh-broadcaster/broadcaster/transports/ha"
)

// part is one piece of the process that runs until its context ends: the source, the HTTP
// server, the publishing side. Like controller-runtime's runnables, the parts that may run on
// the leader only say so once, here, and nothing else needs to know which they are.
type part struct {
	name string
	// run returns when ctx ends (nil) or when the part cannot go on.
	run func(ctx context.Context) error
	// lead, instead of run, makes a leader-only part: it runs while this replica leads
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

// runParts runs parts until ctx ends or one of them fails. Without an elector this process
// always leads, in the first epoch of its hub, and every part runs at once; with one, the
// elector runs the leader-only parts during each term. (Order does not matter: publishers read
// the change log, which keeps the batch that opened the epoch for them.)
func runParts(ctx context.Context, parts []part, elector leaderElector, log *slog.Logger) error {
	g, ctx := errgroup.WithContext(ctx)
	var leading []part
	for _, p := range parts {
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

// runTerm runs the leader-only parts for one term: until leadCtx ends, or until one of them
// returns, which gives the lease up (the others then stop as if it was lost).
func runTerm(leadCtx context.Context, term ha.Term, parts []part, log *slog.Logger) {
	ctx, cancel := context.WithCancelCause(leadCtx)
	defer cancel(nil)
	done := make(chan error, len(parts))
	for _, p := range parts {
		go func() { done <- named(p, p.lead(ctx, term)) }()
	}
	for range parts {
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

func named(p part, err error) error {
	if err == nil || errors.Is(err, context.Canceled) {
		return nil
	}
	return fmt.Errorf("%s: %w", p.name, err)
}
