// Package image holds the tests of what operators install rather than of the code: the
// container image built by deploy/build-image.sh (built offline with buildah, run with podman on
// the example mesh, probed and stopped), and the manifests of deploy/ and examples/ (the
// kustomization builds with kustomize, pinned and built from the Go module proxy; the
// ConfigMap's settings load through config.Load; the SinkBinding and Backstage snippets name
// what deploy/ creates; the secured-cluster components build over deploy/ into objects the
// pinned Knative CRDs accept whole). It has no code of its own: the invariant is that every file an
// operator copies is exercised here, so none can rot unseen.
package image
