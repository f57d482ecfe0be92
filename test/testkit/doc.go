// Package testkit holds what the tests of every package share: waiting for a condition with a
// deadline instead of sleeping, and failing fast on set-up errors. It imports only the
// standard library, so any package's tests can use it without an import cycle.
package testkit
