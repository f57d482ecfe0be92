package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"runtime/debug"
	"time"

	"github.com/event-mesh-broadcaster/broadcaster/mesh/hub"
)

// newLogger is the broadcaster's logger: text or JSON lines on out.
func newLogger(out io.Writer, format string, level slog.Level) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(out, opts))
	}
	return slog.New(slog.NewTextHandler(out, opts))
}

// announceReady logs once the broadcaster serves a whole mesh, and then returns the memory of
// the initial listing to the system. Decoding a cluster's lists takes several times what the
// mesh keeps of them, and the Go runtime would hand that back only slowly; done once, it costs
// one collection.
func announceReady(h *hub.Hub, started time.Time, log *slog.Logger) func(context.Context) error {
	return func(ctx context.Context) error {
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for !h.Ready() {
			select {
			case <-ctx.Done():
				return nil
			case <-tick.C:
			}
		}
		snap := h.Snapshot()
		log.Info("ready", "entities", snap.Len(), "epoch", snap.Position().Epoch, "sequence", snap.Position().Sequence,
			"after", time.Since(started).Round(time.Millisecond).String())
		debug.FreeOSMemory()
		<-ctx.Done()
		return nil
	}
}

// errSignal is the cause of a stop asked for by a signal.
var errSignal = errors.New("signal")

// stopReason says why ctx ended: the signal, or the cancellation.
func stopReason(ctx context.Context) string {
	if cause := context.Cause(ctx); cause != nil {
		return cause.Error()
	}
	return "stopped"
}
