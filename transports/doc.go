// Package transports holds the ways mesh changes leave the broadcaster. Push transports (HTTP
// sinks, MQTT, NATS) live in subpackages; so does the pull side, resync, which consumers call
// instead of being called.
package transports
