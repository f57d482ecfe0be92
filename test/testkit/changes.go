package testkit

import (
	"fmt"
	"slices"
	"sync"

	"github.com/event-mesh-broadcaster/broadcaster/mesh"
)

// ChangeRecorder keeps, in order, the changes a consumer passed on (one line each: what,
// name, sequence, op) and the errors it reported; it is safe for concurrent use.
type ChangeRecorder struct {
	mu     sync.Mutex
	log    []string
	errors []error
}

// Note returns a handler that records each change it gets as what.
func (r *ChangeRecorder) Note(what string) func(mesh.Change) error {
	return func(c mesh.Change) error {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.log = append(r.log, fmt.Sprintf("%s %s %d %s", what, c.Key.Name, c.Sequence, c.Op))
		return nil
	}
}

// OnError records an error.
func (r *ChangeRecorder) OnError(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errors = append(r.errors, err)
}

// Lines returns what was recorded so far.
func (r *ChangeRecorder) Lines() ([]string, []error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.log), slices.Clone(r.errors)
}
