package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/event-mesh-broadcaster/broadcaster/codec"
	"github.com/event-mesh-broadcaster/broadcaster/config"
	"github.com/event-mesh-broadcaster/broadcaster/mesh"
	"github.com/event-mesh-broadcaster/broadcaster/mesh/hub"
	"github.com/event-mesh-broadcaster/broadcaster/source/manifests"
	"github.com/event-mesh-broadcaster/broadcaster/transports"
	"github.com/event-mesh-broadcaster/broadcaster/transports/httpsink"
	"github.com/event-mesh-broadcaster/broadcaster/transports/mqtt"
	"github.com/event-mesh-broadcaster/broadcaster/transports/nats"
	"github.com/event-mesh-broadcaster/broadcaster/transports/queue"
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

	enc, err := codec.NewEncoder(cfg.EventSource)
	if err != nil {
		return fmt.Errorf("--event-source: %w", err)
	}
	deltaLog, err := resync.NewLog(epoch, cfg.DeltaLogSize)
	if err != nil {
		return err
	}
	meshHub.Listen(deltaLog.Append)
	watchers, err := resync.NewWatchers(watchBuffer, enc, log)
	if err != nil {
		return err
	}
	meshHub.Listen(watchers.Publish)

	opts := []resync.Option{resync.WithDeltaLog(deltaLog, enc), resync.WithWatch(watchers, watchHeartbeat)}
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
	// Last of the fallible steps: nothing after it can leave a broker connection open.
	transportQueues, natsPublisher, err := startTransports(ctx, cfg, enc, meshHub, log)
	if err != nil {
		ln.Close()
		return err
	}
	server := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	server.RegisterOnShutdown(watchers.Close) // watch streams never end by themselves
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
	for _, q := range transportQueues {
		g.Go(func() error { q.Run(ctx); return nil })
	}
	if natsPublisher != nil {
		g.Go(func() error { return natsPublisher.ServeResync(ctx, meshHub.Snapshot, meshHub.Ready, 0) })
	}
	g.Go(func() error {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return server.Shutdown(shutdown)
	})
	err = g.Wait()
	flush(transportQueues, log)
	log.Info("broadcaster stopped")
	return err
}

// Watch defaults: a watcher may lag by this many batches of changes before it is cut off, and
// idle streams get a comment this often (below common proxy idle timeouts of 30-60 s).
const (
	watchBuffer    = 4096
	watchHeartbeat = 15 * time.Second
)

// startTransports builds a queued publisher per configured destination and subscribes it to
// the hub before the source starts, so every change of the epoch reaches it.
func startTransports(ctx context.Context, cfg config.Config, enc *codec.Encoder, meshHub *hub.Hub, log *slog.Logger) (queues []*queue.Queue, natsPublisher *nats.Publisher, err error) {
	defer func() {
		if err != nil { // close what was opened before the failure
			for _, q := range queues {
				q.Close(context.Background())
			}
		}
	}()
	add := func(name string, p transports.Publisher) error {
		q, err := queue.New(name, p, cfg.QueueSize, log)
		if err != nil {
			return err
		}
		queues = append(queues, q)
		log.Info("publishing mesh deltas", "transport", name)
		return nil
	}
	if cfg.Sink != "" {
		opts := []httpsink.Option{httpsink.WithOverrides(cfg.CEOverrides)}
		if cfg.CAPEM != nil {
			opts = append(opts, httpsink.WithCACertificates(cfg.CAPEM))
		}
		sink, err := httpsink.New(cfg.Sink, enc, opts...)
		if err != nil {
			return nil, nil, err
		}
		if err := add("http "+cfg.Sink, sink); err != nil {
			return nil, nil, err
		}
	}
	if cfg.MQTT != "" {
		p, err := mqtt.Dial(mqtt.Config{URL: cfg.MQTT, TopicPrefix: cfg.MQTTTopicPrefix, TLS: cfg.TLS(),
			Latest: func() []mesh.Change { return meshHub.Snapshot().Latest() }}, enc, log)
		if err != nil {
			return nil, nil, err
		}
		if err := add("mqtt "+p.Topic("#"), p); err != nil {
			return nil, nil, err
		}
	}
	if cfg.NATS != "" {
		dialCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		p, err := nats.Dial(dialCtx, nats.Config{URL: cfg.NATS, CoreOnly: cfg.NATSCoreOnly,
			SubjectPrefix: cfg.NATSSubjectPrefix, CredsFile: cfg.NATSCreds, TLS: natsTLS(cfg)}, enc, log)
		if err != nil {
			return nil, nil, err
		}
		if err := add("nats "+cfg.NATSSubjectPrefix+".>", p); err != nil {
			return nil, nil, err
		}
		natsPublisher = p
	}
	for _, q := range queues {
		meshHub.Listen(q.Enqueue)
	}
	return queues, natsPublisher, nil
}

// natsTLS is the TLS configuration for a tls:// NATS URL; for nats:// the client negotiates TLS
// only when the server requires it, with the system's CAs unless --ca-file adds some.
func natsTLS(cfg config.Config) *tls.Config {
	if strings.HasPrefix(cfg.NATS, "tls://") || cfg.CAPEM != nil {
		return cfg.TLS()
	}
	return nil
}

// flush gives each transport a last chance to deliver what is queued, within a deadline.
func flush(queues []*queue.Queue, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, q := range queues {
		if err := q.Flush(ctx); err != nil {
			log.Error("shutdown", "err", err)
		}
		delivered, dropped, rejected := q.Stats()
		log.Info("transport stopped", "transport", q.Name(), "delivered", delivered, "dropped", dropped, "rejected", rejected)
		if err := q.Close(ctx); err != nil {
			log.Warn("closing transport", "transport", q.Name(), "err", err)
		}
	}
}

// newEpoch names a new sequence space: nothing is persisted, so every start is a new epoch.
func newEpoch() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go ≥ 1.24)
	return hex.EncodeToString(b)
}
