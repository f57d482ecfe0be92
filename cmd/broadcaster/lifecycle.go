package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"golang.org/x/sync/errgroup"
)

// part is one piece of the process that runs until its context ends: the source, the HTTP
// server, the publishing side. Like controller-runtime's runnables, the parts that may run on
// the leader only say so once, here, and nothing else needs to know which they are.
type part struct {
	name string
	// leaderOnly parts run while this replica leads (always, without an elector).
	leaderOnly bool
	// run returns when ctx ends (nil) or when the part cannot go on.
	run func(ctx context.Context) error
}

// errLeadershipLost is the cause of a leader-only part's context when the lease is lost (not
// when the process stops): what it still holds is the next leader's to deliver.
var errLeadershipLost = errors.New("lost the lease")

// leaderElector takes turns at leading: while this replica holds the lease it calls lead,
// which returns when the lease is lost (leadCtx ends with errLeadershipLost) or when it gives
// the lease up.
type leaderElector interface {
	Run(ctx context.Context, lead func(leadCtx context.Context)) error
}

// runParts runs parts until ctx ends or one of them fails. Without an elector this process
// always leads and every part runs at once; with one, the elector runs the leader-only parts
// during each term. (Order does not matter: publishers read the change log, which keeps the
// batch that opened the epoch for them.)
func runParts(ctx context.Context, parts []part, elector leaderElector, log *slog.Logger) error {
	g, ctx := errgroup.WithContext(ctx)
	var leading, always []part
	for _, p := range parts {
		if p.leaderOnly {
			leading = append(leading, p)
		} else {
			always = append(always, p)
		}
	}
	if elector == nil {
		always = append(always, leading...)
	} else {
		g.Go(func() error {
			return elector.Run(ctx, func(leadCtx context.Context) { runTerm(leadCtx, leading, log) })
		})
	}
	for _, p := range always {
		g.Go(func() error { return named(p, p.run(ctx)) })
	}
	return g.Wait()
}

// runTerm runs the leader-only parts for one term: until leadCtx ends, or until one of them
// returns, which gives the lease up (the others then stop as if it was lost).
func runTerm(leadCtx context.Context, parts []part, log *slog.Logger) {
	ctx, cancel := context.WithCancelCause(leadCtx)
	defer cancel(nil)
	done := make(chan error, len(parts))
	for _, p := range parts {
		go func() { done <- named(p, p.run(ctx)) }()
	}
	for range parts {
		if err := <-done; err != nil {
			log.Error("cannot lead; giving the lease up", "err", err)
		}
		cause := context.Cause(leadCtx)
		if cause == nil {
			cause = errLeadershipLost
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
