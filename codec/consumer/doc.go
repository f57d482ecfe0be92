// Package consumer keeps a replica of the mesh from mesh-delta events and the snapshot
// endpoint: the library a consumer embeds so it never has to think about ordering.
//
// Feed it every event from any transport (HTTP sink, MQTT, NATS); it applies them in meshseq
// order, drops duplicates, and on a gap or a new epoch takes a snapshot (GET /v1/mesh) and goes
// on from there. The invariant: after Apply returns nil, the replica equals the broadcaster's
// mesh at the replica's Position.
package consumer
