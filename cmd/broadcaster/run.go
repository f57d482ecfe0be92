package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/event-mesh-broadcaster/broadcaster/config"
	"github.com/event-mesh-broadcaster/broadcaster/mesh"
	"github.com/event-mesh-broadcaster/broadcaster/mesh/hub"
	"github.com/event-mesh-broadcaster/broadcaster/source/manifests"
	"github.com/event-mesh-broadcaster/broadcaster/transports/resync"
)

// run wires the broadcaster and blocks until ctx ends or a part fails. started, when set, is
// told the address the endpoints listen on.
func run(ctx context.Context, cfg config.Config, logOut io.Writer, started func(net.Addr)) error {
	level, err := cfg.Level()
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(logOut, &slog.HandlerOptions{Level: level}))

	src, err := manifests.New(cfg.Manifests, manifests.WithLogger(log.With("source", "manifests")))
	if err != nil {
		return err
	}
	epoch := newEpoch()
	meshHub := hub.New(mesh.NewEngine(epoch), src.HasSynced, log)
	meshHub.Listen(hub.LogChanges(log.With("epoch", epoch)))

	var opts []resync.Option
	if len(cfg.Tokens) > 0 {
		opts = append(opts, resync.WithStaticTokens(cfg.Tokens))
	}
	handler, err := resync.New(meshHub, append(opts, resync.WithLogger(log))...)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("--listen: %w", err)
	}
	server := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	log.Info("broadcaster starting", "manifests", cfg.Manifests, "listen", ln.Addr().String(),
		"epoch", epoch, "auth", len(cfg.Tokens) > 0)
	if started != nil {
		started(ln.Addr())
	}

	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		if err := src.Run(ctx, meshHub); err != nil && !errors.Is(err, context.Canceled) {
			return fmt.Errorf("manifests source: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		if err := server.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("http server: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return server.Shutdown(shutdown)
	})
	err = g.Wait()
	log.Info("broadcaster stopped")
	return err
}

// newEpoch names a new sequence space: nothing is persisted, so every start is a new epoch.
func newEpoch() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go ≥ 1.24)
	return hex.EncodeToString(b)
}
