// Package fleet tests broadcasters of several clusters sharing one NATS JetStream cluster, as a
// platform running many Kubernetes clusters deploys them: three broadcasters (three manifests
// directories standing for three clusters, each with its own events.cluster) publish into one
// stream and one KV bucket kept at three replicas on a three-node nats-server cluster on
// loopback, directly or each through a leaf node of its own, while nodes are killed and
// restarted. The invariant it guards: a consumer of the shared stream receives every meshseq
// of every cluster, and the bucket ends equal to each cluster's mesh.
package fleet
