// Package mesh is the event mesh's wire contract, shared by the broadcaster and its consumers:
// the entity JSON types, entity keys, Change, the mesh-delta CloudEvent names, and the names
// of the resync endpoints, headers, Server-Sent Events and the snapshot envelope
// (docs/protocol.md says what each means).
//
// It imports only the standard library, so a consumer embedding codec/consumer does not compile
// the engine (mesh/engine), Kubernetes or CESQL. The invariant a reader must not break: nothing
// here may import another package of this module or anything outside the standard library.
package mesh
