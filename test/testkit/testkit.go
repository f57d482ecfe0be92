package testkit

import (
	"testing"
	"time"
)

// Must returns v, and panics if err is set: for set-up steps that cannot fail unless the test
// itself is wrong.
func Must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// Eventually waits until cond holds, checking every few milliseconds, and fails the test
// naming what when it has not within timeout.
func Eventually(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
