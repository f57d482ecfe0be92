// Package nats publishes mesh-delta CloudEvents to NATS: core publish, or JetStream (the
// default) with async publish acks into a stream for replay, plus a KV bucket holding each
// entity's latest event, from which a late consumer rebuilds the whole mesh.
//
// Subjects are <prefix>.<group>.<Kind>.<namespace>.<name>, each part escaped so that dots in
// groups and names cannot be mistaken for separators: every byte outside [A-Za-z0-9-] becomes
// _XX (its hex code), so "eventing.knative.dev" is "eventing_2Eknative_2Edev". KV keys are the
// same four escaped tokens joined by dots. Payloads are structured-mode CloudEvents JSON; the
// Nats-Msg-Id header is the event id, so JetStream drops a retried duplicate.
package nats
