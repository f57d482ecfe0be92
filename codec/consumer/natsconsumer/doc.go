// Package natsconsumer is the NATS side of the consumer library, for consumers that read a
// broadcaster's NATS transport: Snapshots answers a Replica's resyncs over NATS request-reply
// (so a replica needs no HTTP), and Follow lists the KV bucket of latest states and then
// passes on the changes published under the subject prefix, without showing an entity twice.
//
// It is a package of its own so that consumers who do not use NATS do not compile nats.go:
// package consumer imports no broker client. Connections stay the caller's.
package natsconsumer
