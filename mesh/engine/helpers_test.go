package engine

import (
	"github.com/event-mesh-broadcaster/broadcaster/mesh"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// upsert applies one whole object, as a source's batch of one would.
func (e *Engine) upsert(u *unstructured.Unstructured) ([]mesh.Change, error) {
	return e.Apply(Upserts(u))
}

// remove applies the deletion of one object.
func (e *Engine) remove(ref ObjectRef) []mesh.Change {
	changes, _ := e.Apply(Deletes(ref))
	return changes
}
