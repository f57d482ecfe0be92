// Package engine keeps the Knative event mesh and computes, for each Kubernetes object change,
// exactly which mesh entities changed.
//
// Sources feed batches of object changes to an Engine; the Engine answers with sequenced
// mesh.Changes and can hand out an immutable Snapshot at any time. Like external-dns's plan
// package, it is pure: no I/O, no goroutines, no clocks. Callers serialise access (mesh/hub).
//
// Each kind of object is declared in one file, kind_<name>.go: how sources find it, how it
// is read and validated, what it contributes to the mesh and the entity it renders. The
// engine's core (engine.go, render.go) and the sources read the declarations; the relation
// rules between kinds (consumers.go, providers.go) are the only other places that name kinds.
//
// The invariant a reader must not break: after every call, the stored entity JSON equals what a
// from-scratch build of the same objects would produce (see the property test), and every
// entity whose JSON changed got exactly one Change, with the next sequence number.
package engine
