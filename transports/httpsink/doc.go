// Package httpsink publishes mesh-delta CloudEvents to any CloudEvents HTTP sink (a Knative
// Broker, a Service, a webhook), the way Knative sources do: the target from --sink or K_SINK
// (or, in cluster mode, the followed address of a referenced object), K_CE_OVERRIDES
// extensions applied, binary mode by default, and in a secured cluster Knative's CAs
// (K_CA_CERTS, the trust bundles) and OIDC tokens (the token file, or TokenRequests).
//
// The invariant: events leave in meshseq order, each retried (capped, jittered exponential
// backoff, honouring Retry-After) until the sink accepts it or rejects it for good (a 4xx other
// than 401, 403, 408 and 429); a retry resends the same id, so the sink can deduplicate.
package httpsink
