package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/event-mesh-broadcaster/broadcaster/codec"
	"github.com/event-mesh-broadcaster/broadcaster/config"
	"github.com/event-mesh-broadcaster/broadcaster/mesh"
	"github.com/event-mesh-broadcaster/broadcaster/mesh/changelog"
	"github.com/event-mesh-broadcaster/broadcaster/mesh/hub"
	"github.com/event-mesh-broadcaster/broadcaster/transports"
	"github.com/event-mesh-broadcaster/broadcaster/transports/delivery"
	"github.com/event-mesh-broadcaster/broadcaster/transports/ha"
	"github.com/event-mesh-broadcaster/broadcaster/transports/httpsink"
	"github.com/event-mesh-broadcaster/broadcaster/transports/mqtt"
	"github.com/event-mesh-broadcaster/broadcaster/transports/nats"
)

// publishing is the leader-only part that delivers the mesh's changes to the configured
// destinations: each opened for the term, with a worker that reads the shared change log.
type publishing struct {
	cfg     config.Config
	enc     *codec.Encoder
	hub     *hub.Hub
	changes *changelog.Log
	metrics *delivery.Metrics
	log     *slog.Logger
}

// destination is one opened transport: its worker, and whatever else serves on its connection
// (the NATS snapshot server).
type destination struct {
	worker *delivery.Worker
	serve  func(context.Context) error
}

// run opens the destinations and delivers until ctx ends. A term that continues a sequence
// space starts the workers where it stood; otherwise they deliver the hub's epoch from its
// opening batch. When the lease was lost (cause ha.ErrLeadershipLost) what is still
// undelivered is left: the next leader publishes it; otherwise it gets a few seconds to be
// delivered.
func (p *publishing) run(ctx context.Context, term ha.Term) error {
	var start []delivery.Option
	if term.Continued {
		start = []delivery.Option{delivery.From(term.From, !term.HandedOver)}
	}
	destinations, err := p.open(ctx, p.hub.Snapshot().Epoch, start)
	if err != nil {
		return err
	}

	workers, stopWorkers := context.WithCancel(context.WithoutCancel(ctx))
	g, _ := errgroup.WithContext(workers)
	for _, d := range destinations {
		g.Go(func() error { return d.worker.Run(workers) })
		if d.serve != nil {
			g.Go(func() error { return d.serve(workers) })
		}
	}
	<-ctx.Done()
	stopWorkers()
	err = g.Wait()
	if errors.Is(context.Cause(ctx), ha.ErrLeadershipLost) {
		p.log.Warn("lost the lease: stopped publishing")
		for _, d := range destinations {
			d.worker.Close(context.Background())
		}
		return err
	}
	flush(destinations, p.log)
	return err
}

// open connects a publisher per configured destination, each with its worker; on failure it
// closes what it had opened. start positions the workers.
func (p *publishing) open(ctx context.Context, epoch string, start []delivery.Option) (destinations []destination, err error) {
	cfg, log := p.cfg, p.log
	defer func() {
		if err != nil {
			for _, d := range destinations {
				d.worker.Close(context.Background())
			}
		}
	}()
	add := func(name string, pub transports.Publisher, serve func(context.Context) error) error {
		opts := append([]delivery.Option{delivery.WithLogger(log)}, start...)
		if p.metrics != nil {
			opts = append(opts, delivery.WithMetrics(p.metrics))
		}
		w, err := delivery.New(name, p.changes, pub, opts...)
		if err != nil {
			pub.Close(context.Background())
			return err
		}
		destinations = append(destinations, destination{worker: w, serve: serve})
		log.Info("publishing mesh deltas", "transport", name)
		return nil
	}
	latest := func() []mesh.Change { return p.hub.Snapshot().Latest() }
	if cfg.Sink != "" {
		opts := []httpsink.Option{httpsink.WithOverrides(cfg.CEOverrides), httpsink.WithLogger(log)}
		if cfg.Customised(cfg.SinkTLS) {
			tlsConfig, err := cfg.TransportTLS(cfg.SinkTLS)
			if err != nil {
				return destinations, fmt.Errorf("sink TLS: %w", err)
			}
			opts = append(opts, httpsink.WithTLS(tlsConfig))
		}
		sink, err := httpsink.New(cfg.Sink, p.enc, opts...)
		if err != nil {
			return destinations, err
		}
		if err := add("http "+sink.Target(), sink, nil); err != nil {
			return destinations, err
		}
	}
	if cfg.MQTT != "" {
		tlsConfig, err := cfg.TransportTLS(cfg.MQTTTLS)
		if err != nil {
			return destinations, fmt.Errorf("mqtt TLS: %w", err)
		}
		opts := []mqtt.Option{mqtt.WithTopicPrefix(cfg.MQTTTopicPrefix), mqtt.WithTLS(tlsConfig),
			mqtt.WithLatest(latest), mqtt.WithLogger(log), mqtt.WithEpoch(epoch),
			mqtt.WithEntityCount(func() int { return p.hub.Snapshot().Len() })}
		if cfg.MQTTClientID != "" {
			opts = append(opts, mqtt.WithClientID(cfg.MQTTClientID))
		}
		if cfg.MQTTUsername != "" {
			password, err := config.Secret(cfg.MQTTPassword, cfg.MQTTPasswordFile)
			if err != nil {
				return destinations, fmt.Errorf("mqtt password file %s: %w", cfg.MQTTPasswordFile, err)
			}
			opts = append(opts, mqtt.WithCredentials(cfg.MQTTUsername, password))
		}
		mp, err := mqtt.New(cfg.MQTT, p.enc, opts...)
		if err != nil {
			return destinations, err
		}
		if err := add("mqtt "+mp.Filter(), mp, nil); err != nil {
			return destinations, err
		}
	}
	if cfg.NATS != "" {
		opts := []nats.Option{nats.WithSubjectPrefix(cfg.NATSSubjectPrefix), nats.WithLatest(latest), nats.WithLogger(log)}
		if cfg.NATSCoreOnly {
			opts = append(opts, nats.WithCoreOnly())
		}
		if cfg.NATSStream != "" {
			opts = append(opts, nats.WithStream(cfg.NATSStream))
		}
		if cfg.NATSKVBucket != "" {
			opts = append(opts, nats.WithBucket(cfg.NATSKVBucket))
		}
		if cfg.NATSCreds != "" {
			opts = append(opts, nats.WithCredsFile(cfg.NATSCreds))
		}
		if cfg.NATSUser != "" {
			password, err := config.Secret(cfg.NATSPassword, cfg.NATSPasswordFile)
			if err != nil {
				return destinations, fmt.Errorf("nats password file %s: %w", cfg.NATSPasswordFile, err)
			}
			opts = append(opts, nats.WithUserInfo(cfg.NATSUser, password))
		}
		if cfg.NATSToken != "" || cfg.NATSTokenFile != "" {
			token, err := config.Secret(cfg.NATSToken, cfg.NATSTokenFile)
			if err != nil {
				return destinations, fmt.Errorf("nats token file %s: %w", cfg.NATSTokenFile, err)
			}
			opts = append(opts, nats.WithToken(token))
		}
		// For nats:// the client negotiates TLS only when the server requires it, with the
		// system's CAs unless TLS settings add some or a client certificate.
		if strings.HasPrefix(cfg.NATS, "tls://") || cfg.Customised(cfg.NATSTLS) {
			tlsConfig, err := cfg.TransportTLS(cfg.NATSTLS)
			if err != nil {
				return destinations, fmt.Errorf("nats TLS: %w", err)
			}
			opts = append(opts, nats.WithTLS(tlsConfig))
		}
		dialCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		np, err := nats.Dial(dialCtx, cfg.NATS, p.enc, opts...)
		if err != nil {
			return destinations, err
		}
		serve := func(ctx context.Context) error { return np.ServeResync(ctx, p.hub.Snapshot, p.hub.Ready, 0) }
		if err := add("nats "+cfg.NATSSubjectPrefix+".>", np, serve); err != nil {
			return destinations, err
		}
	}
	return destinations, nil
}

// flush gives each destination a last chance to deliver what the log holds, within a deadline.
func flush(destinations []destination, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, d := range destinations {
		w := d.worker
		if err := w.Flush(ctx); err != nil {
			log.Error("shutdown", "err", err)
		}
		delivered, missed, lost := w.Stats()
		log.Info("transport stopped", "transport", w.Name(), "delivered", delivered, "missed", missed, "lost", lost)
		if err := w.Close(ctx); err != nil {
			log.Warn("closing transport", "transport", w.Name(), "err", err)
		}
	}
}
