// Package brokers gives tests real message brokers: the ones at MQTT_URL / NATS_URL when those
// are set (CI points them at the machine's Mosquitto and nats-server), otherwise brokers the
// test starts itself on a free loopback port, so `go test` works anywhere. Both run in
// processes of their own, built once per test process from pinned modules: nats-server (a
// tool of this module, see go.mod) and mochi-mqtt (mqttbroker; mochi races internally between
// retained writes and subscription scans, and -race would fail whichever test embedded it).
// A process of its own can be frozen (Pause, SIGSTOP) like a hung broker, and keeps the
// race detector's cost out of the broker.
package brokers
