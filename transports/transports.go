package transports

import (
	"context"
	"errors"

	"github.com/event-mesh-broadcaster/broadcaster/mesh"
)

// Publisher delivers mesh changes to one destination, in order.
type Publisher interface {
	// Publish delivers changes in order, retrying transient failures until it succeeds or ctx
	// ends. A change the destination rejects for good is skipped and reported with
	// ErrRejected; the ones after it are still delivered.
	Publish(ctx context.Context, changes []mesh.Change) error
	// Close releases what the publisher opened; an injected connection is left open.
	Close(ctx context.Context) error
}

// ErrRejected marks changes a destination refused for good (e.g. HTTP 400): retrying cannot help.
var ErrRejected = errors.New("rejected by the destination")
