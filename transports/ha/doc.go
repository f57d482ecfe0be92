// Package ha is high availability: several replicas serve the mesh, one of them (the leader)
// publishes it. It owns the election (client-go's leader election over a Lease that also
// carries the leader's URL), following the leader (replicating its GET /v1/watch into this
// replica) and the handover between them. cmd/broadcaster constructs it with New and calls Run
// with what a leader runs; it drives the hub through the small Replica interface (Lead,
// Follow, and the Mirror a follower keeps), and knows nothing of transports.
//
// Why follow the watch stream and not the cluster: a follower's own informers see the same
// objects, but not in the leader's order, so its numbering would differ. Replicating the
// leader's output is the only way for two replicas to give one change one number. Following is
// part of this package, not a package of its own, because it and the handover share one state
// (is the follower paused, did the last leader say where it stopped) that nothing else uses.
//
// The invariant a reader must not break: every replica gives one change one number. A new
// leader continues the sequence space it followed, in the same epoch, from where it stands.
// When its predecessor handed over cleanly (its shutdown event named a sequence this replica
// holds), it numbers on without a gap. Otherwise the predecessor may have published changes
// this replica never saw, so it skips crashSkip numbers first: consumers see a declared gap
// (and heal it with a snapshot), never two different changes under one number. A replica that
// holds no sequence space opens a new epoch with its whole mesh.
package ha
