// Package backstage proves the drop-in promise: the published Backstage plugin
// @knative-extensions/plugin-knative-event-mesh-backend (npm, pinned in package-lock.json) runs
// unchanged against a broadcaster serving examples/mesh and builds the expected catalog.
// It needs node and npm; the packages are installed once into a cache keyed by the lock file.
package backstage
