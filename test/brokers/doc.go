// Package brokers gives tests real message brokers: the ones at MQTT_URL / NATS_URL when those
// are set (CI points them at the machine's Mosquitto and nats-server), otherwise brokers the
// test starts itself on a free loopback port, so `go test` works anywhere: nats-server embedded,
// and mochi-mqtt in a process of its own (mqttbroker), because mochi races internally between
// retained writes and subscription scans, and -race would fail whichever test embedded it.
package brokers
