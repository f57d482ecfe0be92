// Package transports holds the ways mesh changes leave the broadcaster. Push transports (HTTP
// sinks, MQTT, NATS) live in subpackages; so does the pull side, resync, which consumers call
// instead of being called.
//
// Each push transport owns a Settings type (its fields as users set them, their defaults, a
// Check and an Open given Deps); transports/destinations lists them and opens the configured
// ones. Secret and CheckSecretFile read the credentials those settings name.
package transports
