//go:build tools

// Package apiserver pins the kube-apiserver and etcd binaries used by the
// integration tests (see build.sh). It is never compiled; the imports only keep
// the modules in go.mod/go.sum when running go mod tidy.
package apiserver

import (
	_ "go.etcd.io/etcd/server/v3"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
)
