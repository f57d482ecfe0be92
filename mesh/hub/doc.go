// Package hub shares one engine.Engine between a source and many readers. It is the
// source.Sink that sources feed: it applies each batch of object changes under a lock, hands
// the resulting changes to listeners in sequence order, and gives out snapshots.
//
// The invariant: listeners see every change exactly once, in meshseq order, and a snapshot
// always includes exactly the changes up to its Sequence. Listeners run under the lock, so they
// must not block (transports queue).
package hub
