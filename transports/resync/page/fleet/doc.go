// Package fleet serves one live page over several broadcasters, one per cluster, as
// `broadcaster page` does: the page document (transports/resync/page with its list of
// clusters) at GET /, and for each cluster a streaming reverse proxy from
// /clusters/<name>/v1/<endpoint> to that broadcaster's read endpoints.
//
// It exists because the page is a pure client of one origin: its Content-Security-Policy
// allows requests to its own origin only (connect-src 'self') and it holds no credentials but
// a token typed into the tab. The proxy puts every broadcaster under that origin, adds the
// bearer token given to the command, and forwards nothing but the read endpoints
// (getEventMesh, mesh, deltas, watch, lineage), so the page stays unchanged in what it may
// reach. The invariant: a cluster name is a single path segment (mesh.CheckCluster) and names
// exactly one broadcaster; a watch stream is flushed event by event, never buffered.
package fleet
