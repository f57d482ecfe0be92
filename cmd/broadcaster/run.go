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
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/event-mesh-broadcaster/broadcaster/codec"
	"github.com/event-mesh-broadcaster/broadcaster/config"
	"github.com/event-mesh-broadcaster/broadcaster/mesh/changelog"
	"github.com/event-mesh-broadcaster/broadcaster/mesh/engine"
	"github.com/event-mesh-broadcaster/broadcaster/mesh/hub"
	"github.com/event-mesh-broadcaster/broadcaster/source"
	"github.com/event-mesh-broadcaster/broadcaster/source/kube"
	"github.com/event-mesh-broadcaster/broadcaster/source/manifests"
	"github.com/event-mesh-broadcaster/broadcaster/transports/auth"
	"github.com/event-mesh-broadcaster/broadcaster/transports/auth/kubeauth"
	"github.com/event-mesh-broadcaster/broadcaster/transports/delivery"
	"github.com/event-mesh-broadcaster/broadcaster/transports/ha"
	"github.com/event-mesh-broadcaster/broadcaster/transports/resync"
	"github.com/event-mesh-broadcaster/broadcaster/transports/resync/page"
	"github.com/event-mesh-broadcaster/broadcaster/transports/tlsfiles"
)

// run wires the broadcaster and blocks until ctx ends or a runnable fails. listening, when set, is
// told the address the endpoints listen on.
func run(ctx context.Context, cfg config.Config, logOut io.Writer, listening func(net.Addr)) error {
	level, err := cfg.Level()
	if err != nil {
		return err
	}
	log := newLogger(logOut, cfg.LogFormat, level)
	started := time.Now()
	registry := prometheus.NewRegistry()
	registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	deliveryMetrics, err := delivery.NewMetrics(registry)
	if err != nil {
		return err
	}
	src, cluster, err := openSource(cfg, log, registry)
	if err != nil {
		return err
	}
	epoch := newEpoch()
	registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "broadcaster_source_synced",
		Help: "1 once the source's initial listing (every kind of the cluster, or the whole directory) is in the mesh."},
		func() float64 {
			if src.Listed() {
				return 1
			}
			return 0
		}))
	meshHub, err := hub.New(engine.New(epoch), src.Listed, hub.WithLogger(log), hub.WithMetrics(registry))
	if err != nil {
		return err
	}
	countChanges, err := hub.CountChanges(registry)
	if err != nil {
		return err
	}
	meshHub.Listen(hub.LogChanges(log), countChanges)

	enc, err := newEncoder(cfg)
	if err != nil {
		return err
	}
	deltaLog, err := changelog.New(epoch, changelog.WithMaxChanges(cfg.DeltaLogSize), changelog.WithMaxBytes(cfg.DeltaLogBytes))
	if err != nil {
		return err
	}
	watchers, err := resync.NewWatchers(enc, resync.WithWatchLogger(log), resync.WithMaxWatchers(cfg.MaxWatchers),
		resync.WithMaxWatchersPerIdentity(cfg.MaxWatchersPerIdentity))
	if err != nil {
		return err
	}
	meshHub.Listen(deltaLog.Append, watchers.Publish)

	opts := []resync.Option{resync.WithDeltaLog(deltaLog, enc), resync.WithWatch(watchers, watchHeartbeat), resync.WithLogger(log),
		resync.WithMetrics(registry), resync.WithMaxDeltaRequests(cfg.MaxDeltaRequests), resync.WithLineage(meshHub)}
	authz, roleBindings, err := authorizer(cfg, cluster, log)
	if err != nil {
		return err
	}
	if authz != nil {
		opts = append(opts, resync.WithAuthorizer(authz))
	}
	if stale, ok := src.(source.Staleness); ok {
		opts = append(opts, resync.WithTrouble(stale.Stale))
	}
	handler, err := resync.New(meshHub, opts...)
	if err != nil {
		return err
	}
	mux, err := routes(cfg, registry, handler, authz != nil)
	if err != nil {
		return err
	}
	ln, err := listen(cfg, log)
	if err != nil {
		return err
	}
	// Idle keep-alive connections are closed after a while and headers are bounded; no overall
	// write timeout, since watch streams last (they set their own write deadlines).
	server := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		MaxHeaderBytes: 64 << 10}
	server.RegisterOnShutdown(watchers.Close) // watch streams never end by themselves

	sourceName := cfg.Manifests
	if cluster != nil {
		sourceName = "cluster"
	}
	pub := &publishing{cfg: cfg, enc: enc, hub: meshHub, changes: deltaLog, metrics: deliveryMetrics, log: log}
	if cluster != nil {
		pub.kube = cluster.rest
	}
	runnables := []runnable{
		{name: sourceName + " source", run: func(ctx context.Context) error { return src.Run(ctx, meshHub) }},
		{name: "http server", run: func(ctx context.Context) error { return serve(ctx, server, ln) }},
		{name: "publishing", lead: pub.run},
		{name: "readiness", run: announceReady(meshHub, started, log)},
	}
	if roleBindings != nil {
		runnables = append(runnables, runnable{name: "role bindings", run: roleBindings.Run})
	}
	var elect leaderElector
	if cfg.LeaderElect {
		elect, err = newHA(cfg, cluster, meshHub, ln.Addr(), log, registry)
		if err != nil {
			ln.Close()
			return err
		}
	}
	log.Info("broadcaster starting", "source", sourceName, "listen", ln.Addr().String(), "https", cfg.TLSCertFile != "",
		"epoch", epoch, "auth", cluster != nil || cfg.TokensFile != "", "leaderElect", cfg.LeaderElect)
	if listening != nil {
		listening(ln.Addr())
	}
	// On shutdown the hub stops first, so that what it emitted is final: the leader delivers
	// all of it, and its watch streams end saying where it stopped (a follower taking over
	// then continues without a gap).
	runCtx, stopRunning := context.WithCancel(context.WithoutCancel(ctx))
	defer stopRunning()
	stopping := context.AfterFunc(ctx, func() {
		last := meshHub.Stop()
		log.Info("stopping", "reason", stopReason(ctx), "epoch", last.Epoch, "sequence", last.Sequence)
		stopRunning()
	})
	defer stopping()
	err = runAll(runCtx, runnables, elect, log)
	ln.Close() // when a runnable failed before the server started
	log.Info("broadcaster stopped")
	return err
}

// newEncoder is the encoder of the events: the configured source, and the cluster's name when
// one is set.
func newEncoder(cfg config.Config) (*codec.Encoder, error) {
	var opts []codec.EncoderOption
	if cfg.ClusterName != "" {
		opts = append(opts, codec.WithCluster(cfg.ClusterName))
	}
	enc, err := codec.NewEncoder(cfg.EventSource, opts...)
	if err != nil {
		return nil, fmt.Errorf("events.source or events.cluster: %w", err)
	}
	return enc, nil
}

// authorizer decides who may read the endpoints: in a cluster, Kubernetes tokens (with the
// RoleBindings to watch, which narrow access reviews); in manifests mode, the tokens file if
// one is given; otherwise nil, and everyone may.
func authorizer(cfg config.Config, cluster *clusterClients, log *slog.Logger) (auth.Authorizer, *kubeauth.RoleBindings, error) {
	switch {
	case cluster != nil:
		roleBindings, err := kubeauth.NewRoleBindings(cluster.auth, log)
		if err != nil {
			return nil, nil, err
		}
		authz, err := kubeauth.New(cluster.auth, kubeauth.WithAudiences(cfg.TokenAudiences...), kubeauth.WithRoleBindings(roleBindings))
		return authz, roleBindings, err
	case cfg.TokensFile != "":
		tokens, err := auth.ReadTokens(cfg.TokensFile)
		if err != nil {
			return nil, nil, err
		}
		authz, err := auth.StaticTokens(tokens)
		return authz, nil, err
	}
	return nil, nil, nil
}

// routes are what the server serves: /metrics (behind server.metricsTokenFile's token when
// set), the page and the endpoints; with no access control, only for the Host names allowed.
func routes(cfg config.Config, registry *prometheus.Registry, endpoints http.Handler, guarded bool) (http.Handler, error) {
	mux := http.NewServeMux()
	var metrics http.Handler = promhttp.HandlerFor(registry, promhttp.HandlerOpts{})
	if cfg.MetricsTokenFile != "" {
		tokens, err := auth.ReadTokens(cfg.MetricsTokenFile)
		if err != nil {
			return nil, fmt.Errorf("server.metricsTokenFile: %w", err)
		}
		metrics = resync.RequireToken(tokens, metrics)
	}
	mux.Handle("GET /metrics", metrics)
	mux.Handle("GET /{$}", page.Handler()) // the live picture of the mesh; the API stays below
	mux.Handle("/", endpoints)
	if guarded {
		return mux, nil
	}
	return resync.AllowHosts(cfg.AllowedHosts, mux), nil
}

// listen opens the endpoints' listener, with TLS when a certificate is configured, accepting
// at most server.maxConnections connections at once.
func listen(cfg config.Config, log *slog.Logger) (net.Listener, error) {
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("--listen: %w", err)
	}
	limited, err := resync.LimitConnections(ln, cfg.MaxConnections)
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("server.maxConnections: %w", err)
	}
	ln = limited
	if cfg.TLSCertFile != "" {
		cert, err := tlsfiles.Load(cfg.TLSCertFile, cfg.TLSKeyFile, tlsfiles.WithLogger(log))
		if err != nil {
			ln.Close()
			return nil, fmt.Errorf("--tls-cert-file: %w", err)
		}
		ln = tls.NewListener(ln, cert.Config())
	}
	return ln, nil
}

// serve serves on ln until ctx ends, then shuts the server down within a deadline.
func serve(ctx context.Context, server *http.Server, ln net.Listener) error {
	served := make(chan error, 1)
	go func() { served <- server.Serve(ln) }()
	select {
	case err := <-served:
		return fmt.Errorf("serving: %w", err)
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := server.Shutdown(shutdown)
	if serveErr := <-served; !errors.Is(serveErr, http.ErrServerClosed) {
		err = errors.Join(err, serveErr)
	}
	return err
}

// clusterClients are the API clients beside the source's. Each has a rate limiter of its own,
// so that no flood of token reviews can delay a Lease renewal past its deadline.
type clusterClients struct {
	auth, election kubernetes.Interface
	// rest is the broadcaster's own client configuration, for the transports (the sink's
	// TokenRequests and reference).
	rest *rest.Config
	// token is the bearer token of the broadcaster's own credentials (read again each time:
	// projected ServiceAccount tokens rotate); followers present it to the leader.
	token func() (string, error)
}

var _ ha.Replica = (*hub.Hub)(nil)

// newHA makes h follow the leader while another replica leads, and campaign for the Lease.
// Followers present the broadcaster's own token to the leader and trust the system's and
// --ca-file's CAs.
func newHA(cfg config.Config, cluster *clusterClients, h *hub.Hub, addr net.Addr, log *slog.Logger, metrics prometheus.Registerer) (*ha.HA, error) {
	tlsConfig, err := cfg.TLS()
	if err != nil {
		return nil, fmt.Errorf("--ca-file: %w", err)
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsConfig, Proxy: http.ProxyFromEnvironment,
		ResponseHeaderTimeout: 30 * time.Second, IdleConnTimeout: time.Minute}}
	return ha.New(h, cluster.election, cfg.Advertised(addr),
		ha.WithLease(cfg.LeaderElectionNamespace, config.DefaultLeaseName),
		ha.WithTimings(time.Duration(cfg.LeaseDuration), time.Duration(cfg.RenewDeadline), time.Duration(cfg.RetryPeriod)),
		ha.WithCanLead(h.Listed), ha.WithNewEpoch(newEpoch),
		ha.WithClient(client), ha.WithToken(cluster.token), ha.WithLogger(log), ha.WithMetrics(metrics))
}

// openSource returns the manifests or cluster source; for a cluster also the clients for
// auth and leader election.
func openSource(cfg config.Config, log *slog.Logger, metrics prometheus.Registerer) (source.Source, *clusterClients, error) {
	if !cfg.Cluster() {
		src, err := manifests.New(cfg.Manifests, manifests.WithLogger(log.With("source", "manifests")), manifests.WithMetrics(metrics))
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
	src, err := kube.New(restCfg, kube.WithNamespaces(cfg.Namespaces...), kube.WithLabelSelector(cfg.LabelSelector),
		kube.WithLogger(log.With("source", "cluster")), kube.WithMetrics(metrics))
	if err != nil {
		return nil, nil, err
	}
	clients := &clusterClients{rest: rest.CopyConfig(restCfg), token: func() (string, error) {
		if restCfg.BearerTokenFile == "" {
			return restCfg.BearerToken, nil
		}
		raw, err := os.ReadFile(restCfg.BearerTokenFile)
		return strings.TrimSpace(string(raw)), err
	}}
	for _, c := range []struct {
		into       *kubernetes.Interface
		qps, burst int
	}{
		// Token and access reviews.
		{&clients.auth, 50, 100},
		// A renewal every few seconds; the rest is headroom for retries.
		{&clients.election, 5, 10},
	} {
		own := rest.CopyConfig(restCfg)
		own.QPS, own.Burst = float32(c.qps), c.burst
		client, err := kubernetes.NewForConfig(own) // a rate limiter of its own
		if err != nil {
			return nil, nil, fmt.Errorf("kubernetes client: %w", err)
		}
		*c.into = client
	}
	return src, clients, nil
}

// Idle watch streams get a comment this often (below common proxy idle timeouts of 30-60 s).
const watchHeartbeat = 15 * time.Second

// newEpoch names a new sequence space: nothing is persisted, so every start is a new epoch.
func newEpoch() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go ≥ 1.24)
	return hex.EncodeToString(b)
}
