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

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/event-mesh-broadcaster/broadcaster/codec"
	"github.com/event-mesh-broadcaster/broadcaster/config"
	"github.com/event-mesh-broadcaster/broadcaster/mesh"
	"github.com/event-mesh-broadcaster/broadcaster/mesh/engine"
	"github.com/event-mesh-broadcaster/broadcaster/mesh/hub"
	"github.com/event-mesh-broadcaster/broadcaster/source"
	"github.com/event-mesh-broadcaster/broadcaster/source/kube"
	"github.com/event-mesh-broadcaster/broadcaster/source/manifests"
	"github.com/event-mesh-broadcaster/broadcaster/transports"
	"github.com/event-mesh-broadcaster/broadcaster/transports/httpsink"
	"github.com/event-mesh-broadcaster/broadcaster/transports/mqtt"
	"github.com/event-mesh-broadcaster/broadcaster/transports/nats"
	"github.com/event-mesh-broadcaster/broadcaster/transports/queue"
	"github.com/event-mesh-broadcaster/broadcaster/transports/resync"
	"github.com/event-mesh-broadcaster/broadcaster/transports/resync/kubeauth"
)

// run wires the broadcaster and blocks until ctx ends or a part fails. started, when set, is
// told the address the endpoints listen on.
func run(ctx context.Context, cfg config.Config, logOut io.Writer, started func(net.Addr)) error {
	level, err := cfg.Level()
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(logOut, &slog.HandlerOptions{Level: level}))
	registry := prometheus.NewRegistry()
	registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	src, cluster, err := openSource(cfg, log, registry)
	if err != nil {
		return err
	}
	epoch := newEpoch()
	meshHub := hub.New(engine.New(epoch), src.HasSynced, log)
	meshHub.Listen(hub.LogChanges(log))

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

	opts := []resync.Option{resync.WithDeltaLog(deltaLog, enc), resync.WithWatch(watchers, watchHeartbeat), resync.WithLogger(log)}
	switch {
	case cluster != nil:
		opts = append(opts, resync.WithAuthorizer(kubeauth.New(cluster, kubeauth.Options{})))
	case len(cfg.Tokens) > 0:
		opts = append(opts, resync.WithStaticTokens(cfg.Tokens))
	}
	handler, err := resync.New(meshHub, opts...)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(registry, promhttp.HandlerOpts{}))
	mux.Handle("/", handler)
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("--listen: %w", err)
	}
	pub := &publisher{cfg: cfg, enc: enc, hub: meshHub, log: log}
	var transportQueues []*queue.Queue
	var natsPublisher *nats.Publisher
	if !cfg.LeaderElect {
		// Last of the fallible steps: nothing after it can leave a broker connection open.
		// Subscribed before the source starts, so every change of the epoch reaches them.
		if transportQueues, natsPublisher, err = pub.open(ctx); err != nil {
			ln.Close()
			return err
		}
		for _, q := range transportQueues {
			meshHub.Listen(q.Enqueue)
		}
	}
	server := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	server.RegisterOnShutdown(watchers.Close) // watch streams never end by themselves
	source := cfg.Manifests
	if cluster != nil {
		source = "cluster"
	}
	log.Info("broadcaster starting", "source", source, "listen", ln.Addr().String(),
		"epoch", epoch, "auth", cluster != nil || len(cfg.Tokens) > 0, "leaderElect", cfg.LeaderElect)
	if started != nil {
		started(ln.Addr())
	}

	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		if err := src.Run(ctx, meshHub); err != nil && !errors.Is(err, context.Canceled) {
			return fmt.Errorf("%s source: %w", source, err)
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
	if cfg.LeaderElect {
		g.Go(func() error { return pub.elect(ctx, cluster) })
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

// openSource returns the manifests or cluster source; for a cluster also a client for auth
// and leader election.
func openSource(cfg config.Config, log *slog.Logger, metrics prometheus.Registerer) (source.Source, kubernetes.Interface, error) {
	if !cfg.Cluster() {
		src, err := manifests.New(cfg.Manifests, manifests.WithLogger(log.With("source", "manifests")))
		return src, nil, err
	}
	restCfg, err := cfg.RESTConfig()
	if err != nil {
		return nil, nil, err
	}
	restCfg = rest.CopyConfig(restCfg)
	restCfg.UserAgent = "event-mesh-broadcaster"
	// Informers list and watch once per kind; the default 5 QPS only slows the first listing
	// and the on-demand subscriber kinds.
	restCfg.QPS, restCfg.Burst = 50, 100
	src, err := kube.New(restCfg, kube.Options{Namespaces: cfg.Namespaces, LabelSelector: cfg.LabelSelector,
		Log: log.With("source", "cluster"), Metrics: metrics})
	if err != nil {
		return nil, nil, err
	}
	client, err := kubernetes.NewForConfig(restCfg)
	if err != nil {
		return nil, nil, fmt.Errorf("kubernetes client: %w", err)
	}
	return src, client, nil
}

// Watch defaults: a watcher may lag by this many batches of changes before it is cut off, and
// idle streams get a comment this often (below common proxy idle timeouts of 30-60 s).
const (
	watchBuffer    = 4096
	watchHeartbeat = 15 * time.Second
)

// publisher opens the configured transports: at start-up, or with --leader-elect each time
// this replica is elected.
type publisher struct {
	cfg config.Config
	enc *codec.Encoder
	hub *hub.Hub
	log *slog.Logger
}

// open builds a queued publisher per configured destination; the caller subscribes them.
func (p *publisher) open(ctx context.Context) (queues []*queue.Queue, natsPublisher *nats.Publisher, err error) {
	cfg, log := p.cfg, p.log
	defer func() {
		if err != nil { // close what was opened before the failure
			for _, q := range queues {
				q.Close(context.Background())
			}
		}
	}()
	add := func(name string, pub transports.Publisher) error {
		q, err := queue.New(name, pub, cfg.QueueSize, log)
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
		sink, err := httpsink.New(cfg.Sink, p.enc, opts...)
		if err != nil {
			return nil, nil, err
		}
		if err := add("http "+cfg.Sink, sink); err != nil {
			return nil, nil, err
		}
	}
	if cfg.MQTT != "" {
		mp, err := mqtt.Dial(mqtt.Config{URL: cfg.MQTT, TopicPrefix: cfg.MQTTTopicPrefix, TLS: cfg.TLS(),
			Latest: func() []mesh.Change { return p.hub.Snapshot().Latest() }}, p.enc, log)
		if err != nil {
			return nil, nil, err
		}
		if err := add("mqtt "+mp.Filter(), mp); err != nil {
			return nil, nil, err
		}
	}
	if cfg.NATS != "" {
		dialCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		np, err := nats.Dial(dialCtx, nats.Config{URL: cfg.NATS, CoreOnly: cfg.NATSCoreOnly,
			SubjectPrefix: cfg.NATSSubjectPrefix, CredsFile: cfg.NATSCreds, TLS: natsTLS(cfg),
			Latest: func() []mesh.Change { return p.hub.Snapshot().Latest() }}, p.enc, log)
		if err != nil {
			return nil, nil, err
		}
		if err := add("nats "+cfg.NATSSubjectPrefix+".>", np); err != nil {
			return nil, nil, err
		}
		natsPublisher = np
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
