// Package page tests the live picture of the mesh (transports/resync/page) in a real headless
// Chromium, Debian's chromium package, driven over the DevTools protocol: against the real
// broadcaster binary on a copy of examples/mesh (with and without a tokens file), against a
// scripted server for the resync paths, and at 10,000 entities; its lineage panel and highlight
// against the broadcaster's own GET /v1/lineage answers, before and after an edit; and its
// merged view behind `broadcaster page` over three broadcasters, one of them killed and started
// again. Screenshots go to $BROADCASTER_TEST_ARTIFACTS (default: the test's temporary
// directory).
package page
