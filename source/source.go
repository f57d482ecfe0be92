package source

import (
	"context"

	"github.com/event-mesh-broadcaster/broadcaster/mesh/engine"
	"k8s.io/client-go/tools/cache"
)

// Source delivers objects, read for the mesh (*engine.Parsed), to a handler. Sources read
// them, so the costly part of reading (a filter expression) happens in the source's own
// goroutine, and a source that caches objects caches the small parsed form.
type Source interface {
	// Run delivers the initial listing, then every change, until ctx is done. It returns
	// ctx's error on a clean stop and any other error when the source cannot go on.
	Run(ctx context.Context, h cache.ResourceEventHandler) error
	// HasSynced reports whether the initial listing has been delivered in full.
	HasSynced() bool
}

// BatchHandler is a handler that can also take several changes at once. Sources deliver each
// change of their input (a file, a rescan) through Apply when the handler has it, so the mesh
// goes from one consistent state to the next and emits only the net changes.
type BatchHandler interface {
	cache.ResourceEventHandler
	// Apply applies the deletion of deletes and the creation or update of upserts together.
	Apply(upserts []*engine.Parsed, deletes []engine.ObjectRef)
}

// ListHandler is a handler that can also take a whole listing at once. Sources deliver their
// initial listing through Replace when the handler has it, so the listing becomes one batch: a
// new epoch then opens with each entity added exactly once.
type ListHandler interface {
	cache.ResourceEventHandler
	Replace(objs []*engine.Parsed)
}

// Troubled is a source that can say why it cannot read its input now while it keeps
// serving the last it read (a manifests directory that disappeared): the broadcaster is then
// not ready, and says why.
type Troubled interface {
	// Trouble is nil while the source reads its input.
	Trouble() error
}
