// Package mqtt publishes mesh-delta CloudEvents to an MQTT v5 broker with autopaho (which
// reconnects and keeps the session): QoS 1, each entity's latest event retained on
// <prefix>/<entity key>, so a subscriber to <prefix>/# receives the whole mesh on connect.
//
// Events are structured-mode JSON (content type application/cloudevents+json): a retained
// message is then one self-contained document. A deletion is published as the deleted event
// (not retained), then an empty retained message clears the topic; consumers skip empty
// payloads. Only events carry the CloudEvents content type: the clears and the sweep's markers
// carry none, the status and info topics application/json. The invariant: events leave in
// meshseq order, each retried until the broker acks it.
package mqtt
