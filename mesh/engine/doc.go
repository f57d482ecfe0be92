// Package engine keeps the Knative event mesh and computes, for each Kubernetes object change,
// exactly which mesh entities changed.
//
// Sources feed object upserts and deletes to an Engine; the Engine answers with sequenced
// mesh.Changes and can hand out an immutable Snapshot at any time. Like external-dns's plan
// package, it is pure: no I/O, no goroutines, no clocks. Callers serialise access (mesh/hub).
//
// The invariant a reader must not break: after every call, the stored entity JSON equals what a
// from-scratch build of the same objects would produce (see the property test), and every
// entity whose JSON changed got exactly one Change, with the next sequence number.
package engine
