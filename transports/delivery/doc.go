// Package delivery drives each transport from the shared change log (mesh/changelog): one
// Worker per destination reads the log through its own position and hands the changes to its
// transports.Publisher in meshseq order, from the start of the epoch. Nothing is copied into
// queues, so the size of the mesh never overflows anything, and a dead destination costs no
// memory and delays no other one.
//
// The invariant: a Worker delivers every change of the epoch in order, at least once, except
// those it fell too far behind to read; those it declares as one gap (logged and counted), and
// a destination that keeps state (a transports.Reconciler) is then made equal to the mesh.
package delivery
