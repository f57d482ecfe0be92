// Package queue isolates a transport: it is a decorator that gives a Publisher its own bounded
// queue and worker, so a slow or dead destination never blocks the engine, the other transports
// or the snapshot endpoints, and never grows memory without bound: it holds at most its
// capacity in waiting changes plus one batch in flight.
//
// The invariant: changes reach the publisher in meshseq order; when the queue must drop, it
// drops the oldest changes, counts and logs them, and the consumer sees the gap in meshseq.
package queue
