// Package source feeds Kubernetes objects into the mesh, the way ApiServerSource watches a
// cluster: every implementation delivers object adds, updates and deletes to a client-go
// cache.ResourceEventHandler, so the same handler serves a directory of manifests
// (source/manifests) and a live cluster.
//
// The invariant: once HasSynced reports true, the handler has seen every object the source
// holds, and it keeps seeing every later change in order; nothing is delivered twice as an add.
package source
