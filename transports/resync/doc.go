// Package resync serves the mesh to consumers starting cold: GET /v1/getEventMesh (the
// upstream Knative Event Mesh backend's JSON, so the Backstage plugin works unchanged) and
// GET /v1/mesh (the same snapshot with its epoch and sequence).
//
// The invariant: a response is one snapshot, consistent with exactly the sequence it reports,
// and nothing is served before the source's first full listing (503 until then).
package resync
