package main

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/event-mesh-broadcaster/broadcaster/codec"
	"github.com/event-mesh-broadcaster/broadcaster/config"
	"github.com/event-mesh-broadcaster/broadcaster/mesh"
	"github.com/event-mesh-broadcaster/broadcaster/mesh/hub"
	"github.com/event-mesh-broadcaster/broadcaster/transports"
	"github.com/event-mesh-broadcaster/broadcaster/transports/httpsink"
	"github.com/event-mesh-broadcaster/broadcaster/transports/mqtt"
	"github.com/event-mesh-broadcaster/broadcaster/transports/nats"
	"github.com/event-mesh-broadcaster/broadcaster/transports/queue"
)

// publishing is the leader-only part that delivers the mesh's changes to the configured
// destinations: each opened for the term, behind its own queue, with its worker.
type publishing struct {
	cfg config.Config
	enc *codec.Encoder
	hub *hub.Hub
	log *slog.Logger
	// newEpoch makes each term open a new epoch with the whole mesh (a new leader); without
	// it the term joins the hub's first epoch, which opens with the source's first listing.
	newEpoch bool
}

// destination is one opened transport: its queue, and whatever else runs on its connection
// (the NATS snapshot server).
type destination struct {
	queue  *queue.Queue
	beside func(context.Context) error
}

// run opens the destinations, subscribes their queues and delivers until ctx ends. When the
// lease was lost (cause errLeadershipLost) what is still queued is dropped: the next leader
// publishes it; otherwise it gets a few seconds to be delivered.
func (p *publishing) run(ctx context.Context, started func()) error {
	destinations, err := p.open(ctx)
	if err != nil {
		return err
	}
	listeners := make([]hub.Listener, len(destinations))
	for i, d := range destinations {
		listeners[i] = d.queue.Enqueue
	}
	var unsubscribe func()
	if p.newEpoch {
		epoch := newEpoch()
		unsubscribe = p.hub.Restart(epoch, listeners...)
		p.log.Info("leading: publishing the mesh as a new epoch", "epoch", epoch, "entities", p.hub.Snapshot().Len())
	} else {
		unsubscribe = p.hub.Listen(listeners...)
	}
	started()

	workers, stopWorkers := context.WithCancel(context.WithoutCancel(ctx))
	g, _ := errgroup.WithContext(workers)
	for _, d := range destinations {
		g.Go(func() error { d.queue.Run(workers); return nil })
		if d.beside != nil {
			g.Go(func() error { return d.beside(workers) })
		}
	}
	<-ctx.Done()
	unsubscribe()
	stopWorkers()
	err = g.Wait()
	if errors.Is(context.Cause(ctx), errLeadershipLost) {
		p.log.Warn("lost the lease: stopped publishing")
		for _, d := range destinations {
			d.queue.Close(context.Background())
		}
		return err
	}
	flush(destinations, p.log)
	return err
}

// open connects a queued publisher per configured destination; on failure it closes what it
// had opened.
func (p *publishing) open(ctx context.Context) (destinations []destination, err error) {
	cfg, log := p.cfg, p.log
	defer func() {
		if err != nil {
			for _, d := range destinations {
				d.queue.Close(context.Background())
			}
		}
	}()
	add := func(name string, pub transports.Publisher, beside func(context.Context) error) error {
		q, err := queue.New(name, pub, queue.WithCapacity(cfg.QueueSize), queue.WithLogger(log))
		if err != nil {
			pub.Close(context.Background())
			return err
		}
		destinations = append(destinations, destination{queue: q, beside: beside})
		log.Info("publishing mesh deltas", "transport", name)
		return nil
	}
	latest := func() []mesh.Change { return p.hub.Snapshot().Latest() }
	caPEM, err := cfg.CACertificates()
	if err != nil {
		return nil, err
	}
	tlsConfig, err := cfg.TLS()
	if err != nil {
		return nil, err
	}
	if cfg.Sink != "" {
		opts := []httpsink.Option{httpsink.WithOverrides(cfg.CEOverrides)}
		if caPEM != nil {
			opts = append(opts, httpsink.WithCACertificates(caPEM))
		}
		sink, err := httpsink.New(cfg.Sink, p.enc, opts...)
		if err != nil {
			return destinations, err
		}
		if err := add("http "+cfg.Sink, sink, nil); err != nil {
			return destinations, err
		}
	}
	if cfg.MQTT != "" {
		mp, err := mqtt.New(cfg.MQTT, p.enc, mqtt.WithTopicPrefix(cfg.MQTTTopicPrefix), mqtt.WithTLS(tlsConfig),
			mqtt.WithLatest(latest), mqtt.WithLogger(log))
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
		if cfg.NATSCreds != "" {
			opts = append(opts, nats.WithCredsFile(cfg.NATSCreds))
		}
		// For nats:// the client negotiates TLS only when the server requires it, with the
		// system's CAs unless --ca-file adds some.
		if strings.HasPrefix(cfg.NATS, "tls://") || caPEM != nil {
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

// flush gives each destination a last chance to deliver what is queued, within a deadline.
func flush(destinations []destination, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, d := range destinations {
		q := d.queue
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
