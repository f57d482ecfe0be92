// Package testkit holds what the tests of many packages share: waiting for a condition with a
// deadline instead of sleeping, a buffer logs and tests can share, decoding what an HTTP sink
// receives, cleaning JetStream up, and the relation-rule tables that the engine's tests and
// the cluster tests both replay, and the end-to-end harness: a binary built once per test
// binary (the broadcaster's, above all), a free loopback address, and a child process that
// dies with the test, can be killed or stopped as a rollout does, and logs its output when
// the test failed. It imports none of the engine, so the engine's own tests can use it
// without an import cycle.
package testkit
