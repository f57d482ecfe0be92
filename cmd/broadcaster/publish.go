package main

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"golang.org/x/sync/errgroup"
	"k8s.io/client-go/rest"

	"github.com/event-mesh-broadcaster/broadcaster/codec"
	"github.com/event-mesh-broadcaster/broadcaster/config"
	"github.com/event-mesh-broadcaster/broadcaster/mesh"
	"github.com/event-mesh-broadcaster/broadcaster/mesh/changelog"
	"github.com/event-mesh-broadcaster/broadcaster/mesh/hub"
	"github.com/event-mesh-broadcaster/broadcaster/transports"
	"github.com/event-mesh-broadcaster/broadcaster/transports/delivery"
	"github.com/event-mesh-broadcaster/broadcaster/transports/destinations"
	"github.com/event-mesh-broadcaster/broadcaster/transports/ha"
	"github.com/event-mesh-broadcaster/broadcaster/transports/nats"
)

// publishing is the leader-only runnable that delivers the mesh's changes to the configured
// destinations: each opened for the term, with a worker that reads the shared change log.
type publishing struct {
	cfg     config.Config
	enc     *codec.Encoder
	hub     *hub.Hub
	changes *changelog.Log
	metrics *delivery.Metrics
	log     *slog.Logger
	kube    *rest.Config // cluster mode: the broadcaster's own credentials
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
	destinations, err := p.open(ctx, p.hub.Position().Epoch, start)
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

// open connects a publisher per configured destination (the factory, transports/destinations),
// each with its worker; on failure it closes what it had opened. start positions the workers.
func (p *publishing) open(ctx context.Context, epoch string, start []delivery.Option) (opened []destination, err error) {
	log := p.log
	defer func() {
		if err != nil {
			for _, d := range opened {
				d.worker.Close(context.Background())
			}
		}
	}()
	pubs, err := destinations.Open(ctx, p.cfg, transports.Deps{Encoder: p.enc, Log: log, Epoch: epoch,
		Latest: func() []mesh.Change { return p.hub.Snapshot().Latest() }, Count: func() int { return p.hub.Snapshot().Len() },
		Kube: p.kube, Namespace: p.cfg.Namespace})
	if err != nil {
		return nil, err
	}
	for i, d := range pubs {
		opts := append([]delivery.Option{delivery.WithLogger(log)}, start...)
		if p.metrics != nil {
			opts = append(opts, delivery.WithMetrics(p.metrics))
		}
		w, err := delivery.New(d.Name, p.changes, d.Publisher, opts...)
		if err != nil {
			for _, rest := range pubs[i:] {
				rest.Publisher.Close(context.Background())
			}
			return opened, err
		}
		var serve func(context.Context) error
		if r, ok := d.Publisher.(resyncServer); ok { // the NATS snapshot server, on the publisher's connection
			serve = func(ctx context.Context) error { return r.ServeResync(ctx, p.hub.Snapshot, p.hub.Ready, 0) }
		}
		opened = append(opened, destination{worker: w, serve: serve})
		log.Info("publishing mesh deltas", "transport", d.Name)
	}
	return opened, nil
}

// resyncServer is a publisher that also answers snapshot requests on its connection (NATS).
type resyncServer interface {
	ServeResync(ctx context.Context, snapshot func() mesh.State, ready func() bool, chunk int) error
}

var _ resyncServer = (*nats.Publisher)(nil)

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
