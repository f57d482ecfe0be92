package source

import (
	"context"

	"github.com/event-mesh-broadcaster/broadcaster/mesh/engine"
)

// Source delivers objects, read for the mesh (engine.Parse), to a Sink in batches. Sources
// read them, so the costly part of reading (a filter expression) happens in the source's own
// goroutine, and a source that caches objects caches the small parsed form.
type Source interface {
	// Run delivers the initial listing as one batch (Replace), then every later change, until
	// ctx is done. It returns ctx's error on a clean stop and any other error when the source
	// cannot go on.
	Run(ctx context.Context, sink Sink) error
	// Listed reports whether the initial listing has been delivered in full.
	Listed() bool
}

// Sink takes a source's object changes: the mesh hub. A batch is applied as a whole, so the
// mesh goes from one consistent state to the next and emits only the net changes. Apply is
// called from one goroutine of the source at a time, and must not keep the batch.
type Sink interface {
	Apply(engine.ObjectBatch)
}

// Staleness is a source that can say why what it serves may be out of date: it cannot read
// its input now and keeps serving the last it read (a manifests directory that disappeared).
// The broadcaster is then not ready, and says why.
type Staleness interface {
	// Stale is nil while the source reads its input.
	Stale() error
}
