// Package stockclients points the clients people use, pinned from npm, at the real broadcaster
// binary: a WHATWG EventSource (the eventsource package) with no reconnect code of its own, and
// MQTT.js with the CloudEvents JavaScript SDK decoding every MQTT message by its content type,
// against a Mosquitto of the test's own with its defaults; and the NATS CLI (natscli, pinned,
// built from the Go module proxy into the user cache) reading the KV bucket. Node.js 22 and the packages are
// installed once per package-lock.json into the user cache (testkit.NPMInstall); a missing
// npm or mosquitto is a failure, not a skip.
package stockclients
