// Package kube is the cluster source: it watches a Kubernetes API server with client-go
// informers, the way ApiServerSource does, and feeds every object the mesh depends on to a
// source.Sink (the mesh hub) in batches. Nothing is polled and no request reaches the
// API server per mesh read; after the initial listing, the API server pushes every change.
//
// What it watches, and why each is needed:
//   - CustomResourceDefinitions (their schemas stripped): their labels say which kinds are
//     channels and sources, their annotations what event types a source provides, and their
//     names, versions and scope say how to watch those kinds without asking discovery.
//   - Every kind the engine declares (Brokers, Triggers, EventTypes, Subscriptions, Sequences,
//     Parallels, EventTransforms, RequestReplies, EventPolicies, JobSinks, IntegrationSinks;
//     each degrades alone where the cluster does not serve it), and every channel and source kind, in full;
//     informers for channel and source kinds start and stop as labelled CRDs appear and
//     disappear. Each kind is read at the version its CRD stores (else the newest served), so
//     the API server converts nothing: no conversion webhook sits in the read path, and no
//     field of the stored shape is pruned away (EventTypes are stored at v1beta2, whose
//     schemaData v1beta3 lacks).
//   - Every kind some object's edges name that the engine does not declare (a subscriber's, a
//     sink's, a dead-letter sink's: Knative Services, core Services, ...), started on first
//     reference and stopped after the last, so the mesh knows whether each named object exists
//     (a missing one is a dangling edge), its address and its Backstage id. Kinds not defined by
//     a CRD (core Services, say) are resolved through a discovery RESTMapper.
//
// Exactness: the mesh engine is idempotent (an unchanged object changes nothing), client-go
// informers replay a relist as updates plus tombstones for objects gone meanwhile, and the
// source tracks which objects it has sent per kind, so stopping or swapping an informer
// deletes exactly what disappeared with it. The initial listing of every kind is delivered as
// one batch (engine.ObjectBatch.Replace).
//
// A kind the source may not list (RBAC) or that the API server does not serve is degraded on
// its own: a log line, the broadcaster_source_kind_degraded gauge, and the informer's retries
// until it works again; the rest of the mesh carries on.
package kube
