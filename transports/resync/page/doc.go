// Package page serves the live picture of the mesh at GET / of the broadcaster: one static
// HTML document, with its script and style inline, that reads GET /v1/getEventMesh, follows
// GET /v1/watch and draws the graph of mesh/graph (sources, Brokers and channels → EventTypes →
// Backstage consumers, by namespace), with namespace filters and a search box. A box clicked or
// a question picked asks GET /v1/lineage (where an EventType's events go, who sends to an
// entity and who may, what is broken), draws the answer in a side panel, highlights what lies
// on it on the graph and asks again after the watch stream's changes. Given a list of
// clusters (WithClusters, as transports/resync/page/fleet serves it) it is a merged view: one
// replica per cluster, each from clusters/<name>/v1/ beside the page.
//
// It lives beside transports/resync because it is a client of those endpoints and nothing
// else: it imports nothing of the server, holds no state and needs no token itself (the page
// asks for one when the API answers 401 and keeps it in the tab's sessionStorage). The
// invariant: the document is self-contained (embedded in the binary, nothing fetched at run
// time, which its Content-Security-Policy enforces), so one route serves all of it; and every
// name from the mesh is drawn as text (textContent, attributes), never parsed as markup.
package page
