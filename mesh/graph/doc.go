// Package graph turns an event mesh into the picture operators look at: sources, Brokers and
// channels → the EventTypes they provide → the Backstage entities consuming them, grouped by
// namespace, and renders it as Mermaid or Graphviz DOT.
//
// `broadcaster snapshot` prints it; the page the broadcaster serves at GET / draws the same
// graph by the same rules in the browser (its test checks both agree on the example). It is
// pure and imports only the wire contract (package mesh), so a consumer can render a replica's
// mesh without the engine. The invariant: Build is deterministic (the same mesh gives the same
// bytes), and no name, however odd, can break out of a label in either syntax.
package graph
