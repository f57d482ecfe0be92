// Package brokers gives tests real message brokers: the ones at MQTT_URL / NATS_URL when those
// are set (CI points them at the machine's Mosquitto and nats-server), otherwise embedded
// servers started on a free loopback port, so `go test` works anywhere.
package brokers
