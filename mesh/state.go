package mesh

import (
	"encoding/json"
	"io"
)

// State is the whole mesh at one Position: immutable, consistent, and cheap to take, so a
// reader serialises it without holding up the producer. The engine (mesh/engine) makes them;
// transports read them through this interface, so none of them compiles the engine.
type State interface {
	// Position is where the state is in its sequence space.
	Position() Position
	// Len is the number of entities.
	Len() int
	// Latest lists each entity's latest change (what a retained message or a KV entry
	// holds), in EventMesh order.
	Latest() []Change
	// Namespaces lists the namespaces that hold entities, sorted.
	Namespaces() []string
	// EventMesh is the state as the upstream GET /v1/getEventMesh shape (without Graphs).
	EventMesh() (EventMesh, error)
	// Mesh is the whole state: every kind, each entity with its Graph.
	Mesh() (Mesh, error)
	// WriteEventMesh writes EventMesh as JSON; WriteEventMeshOf writes only the entities
	// of the namespaces keep accepts (nil: all), each scoped for that view (ForView).
	WriteEventMesh(w io.Writer) error
	WriteEventMeshOf(w io.Writer, keep func(namespace string) bool) error
	// WriteMeshOf writes the whole Mesh JSON (every kind, each entity with its Graph) with only
	// the entities of the namespaces keep accepts (nil: all), each scoped for that view.
	WriteMeshOf(w io.Writer, keep func(namespace string) bool) error
	// ForView is an entity's JSON as a caller who sees only some namespaces may see it: the
	// names it lists of namespaces the caller does not see are left out.
	ForView(kind EntityKind, entity json.RawMessage, sees func(namespace string) bool) json.RawMessage
}
