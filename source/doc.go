// Package source feeds Kubernetes objects into the mesh, the way ApiServerSource watches a
// cluster: every implementation hands batches of parsed objects (upserts, deletes, or a whole
// listing) to a Sink, so the same sink, the mesh hub, serves a directory of manifests
// (source/manifests) and a live cluster (source/kube). client-go's handlers stay private to
// the cluster source.
//
// The invariant: once Listed reports true, the sink has received every object the source
// holds, and it keeps receiving every later change in order.
package source
