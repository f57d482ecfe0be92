// Package page serves the live picture of the mesh at GET / of the broadcaster: one static
// HTML document, with its script and style inline, that reads GET /v1/getEventMesh, follows
// GET /v1/watch and draws the graph of mesh/graph (sources, Brokers and channels → EventTypes →
// Backstage consumers, by namespace), with namespace filters and a search box.
//
// It lives beside transports/resync because it is a client of those endpoints and nothing
// else: it imports nothing of the server, holds no state and needs no token itself (the page
// asks for one when the API answers 401 and keeps it in the tab's sessionStorage). The
// invariant: the document is self-contained (embedded in the binary, nothing fetched at run
// time, which its Content-Security-Policy enforces), so one route serves all of it.
package page
