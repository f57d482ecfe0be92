// Package mqttconsumer is the MQTT side of the consumer library, for consumers that read a
// broadcaster's MQTT transport: Connect subscribes to <prefix>/# on every connection (through
// autopaho's connection manager), skips the empty payloads that clear a deleted entity's
// retained message, and tells the retained messages (the mesh's state) from live changes.
//
// It is a package of its own so that consumers who do not use MQTT do not compile paho:
// package consumer imports no broker client.
package mqttconsumer
