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

// Reconciler is a Publisher whose destination keeps each entity's latest state (MQTT retained
// messages, a NATS KV bucket). Entities deleted while nobody published have no event of their
// own, so after the batch that opens an epoch the delivery path asks the destination to drop
// whatever the mesh lacks.
type Reconciler interface {
	Publisher
	// Reconcile removes the state of entities the mesh does not have.
	Reconcile(ctx context.Context) error
}

// ErrRejected marks changes a destination refused for good (e.g. HTTP 400): retrying cannot help.
var ErrRejected = errors.New("rejected by the destination")
