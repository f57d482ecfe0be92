package source

import (
	"context"

	"k8s.io/client-go/tools/cache"
)

// Source delivers objects (as *unstructured.Unstructured) to a handler.
type Source interface {
	// Run delivers the initial listing, then every change, until ctx is done. It returns
	// ctx's error on a clean stop and any other error when the source cannot go on.
	Run(ctx context.Context, h cache.ResourceEventHandler) error
	// HasSynced reports whether the initial listing has been delivered in full.
	HasSynced() bool
}
