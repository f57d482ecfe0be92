// Package fleet tests broadcasters of several clusters sharing one NATS JetStream cluster, as a
// platform running many Kubernetes clusters deploys them: three broadcasters (three manifests
// directories standing for three clusters, each with its own events.cluster) publish into one
// stream and one KV bucket kept at three replicas on a three-node nats-server cluster on
// loopback, directly or each through a leaf node of its own, while nodes are killed and
// restarted. The invariant it guards: a consumer of the shared stream receives every meshseq
// of every cluster, and the bucket ends equal to each cluster's mesh.
//
// BenchmarkFleet measures a consumer of such a fleet at scale (50 clusters × 10,000 entities):
// its memory, its cold start from the KV bucket and a change's latency to it
// (docs/benchmarks.md); benchmarks run only with -bench.
package fleet
