// Package changelog keeps what every reader of the mesh's changes shares: the batch that
// opened the current epoch (the whole mesh, once, however many readers) and the changes since,
// bounded in count and in bytes. Each reader (a transport's worker, GET /v1/deltas, a resumed
// watch) keeps its own position and reads from there, so the size of the mesh never
// overflows anything, and a reader that falls further behind than the log holds learns exactly
// how much it missed (a declared gap) and goes on in order.
//
// The invariant: Read and Since return changes of one epoch in meshseq order with no hole,
// except the one a returned Missed declares.
package changelog
