// Package lineage answers the questions Knative users ask of the event graph: where does an
// event of this EventType go (and where do its failures go), who sends to this Broker, channel
// or sink and who may (EventPolicies), and which routes are broken.
//
// It walks a Graph, the engine's live view, rather than a snapshot: a query touches only the
// part of the graph it answers about (a few hundred objects), so it answers in well under a
// millisecond at any mesh size, while the mesh keeps changing beside it. Its owner reads the
// Graph under its own lock for the length of one query.
//
// Walks are bounded twice: a path ends where it meets an object it already passed (a cycle,
// reported once, never followed) and the number of paths is capped (Limits); an answer that
// hit a cap says so (Answer.Truncated). A caller's visibility cuts paths: a hop into a
// namespace the caller may not see ends the path as "hidden", naming nothing of it.
//
// Filters are evaluated by the Graph (the engine's three-valued evaluation of a Trigger's
// filter against what an EventType declares), so "maybe" is an answer: a filter on an
// attribute the EventType leaves open may pass. Past a hop where the event may become another
// one (a subscriber's reply, a Sequence step, a transform), nothing is known of the event.
package lineage
