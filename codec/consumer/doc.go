// Package consumer keeps a replica of the mesh from mesh-delta events and the snapshot
// endpoint: the library a consumer embeds so it never has to think about ordering.
//
// The simplest consumer follows GET /v1/watch with Replica.Watch (see its example): one
// connection brings the snapshot and then every delta, and breaks are resumed. A consumer of
// another transport (HTTP sink, MQTT, NATS) feeds every event to Replica.Apply; the replica
// applies them in meshseq order, drops duplicates, and on a gap or a new epoch catches up
// from GET /v1/deltas or takes a snapshot (GET /v1/mesh). docs/protocol.md is the contract.
// The subpackages natsconsumer (snapshots over NATS request-reply, the KV bucket and the
// subjects) and mqttconsumer (the subscription to the topics) are opt-in.
//
// It imports the wire contract (package mesh) and the codec, never the engine nor a broker
// client, so embedding it costs no Kubernetes libraries, nats.go or paho (deps_test.go bounds
// what it compiles). The invariant: after Apply returns nil, the replica equals the
// broadcaster's mesh at the replica's Position.
package consumer
