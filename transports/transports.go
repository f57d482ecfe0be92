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
// messages, a NATS KV bucket). When that state may have drifted from the mesh, the delivery
// path asks it to catch up: after the batch that opens an epoch (entities deleted while
// nobody published have no event of their own), and after changes it could not deliver.
type Reconciler interface {
	Publisher
	// Reconcile removes the state of entities the mesh does not have; with republish it also
	// writes every entity's latest state again (changes were missed).
	Reconcile(ctx context.Context, republish bool) error
}

// ErrFatal marks a destination that cannot be used at all (a name on the server belongs to
// someone else): retrying cannot help, and the broadcaster stops rather than run without it.
var ErrFatal = errors.New("the destination cannot be used")

// ErrRejected marks changes a destination refused for good (e.g. HTTP 400): retrying cannot help.
var ErrRejected = errors.New("rejected by the destination")
