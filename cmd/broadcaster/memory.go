package main

import (
	"context"
	"runtime/debug"
	"time"
)

// releaseListingMemory returns the memory of the initial listing to the system once the mesh
// holds it. Decoding a cluster's lists takes several times what the mesh keeps of them, and
// the Go runtime would hand that back only slowly; done once, it costs one collection.
func releaseListingMemory(synced func() bool) func(context.Context) error {
	return func(ctx context.Context) error {
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for !synced() {
			select {
			case <-ctx.Done():
				return nil
			case <-tick.C:
			}
		}
		debug.FreeOSMemory()
		<-ctx.Done()
		return nil
	}
}
