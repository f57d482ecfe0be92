#!/usr/bin/env bash
# Prints the path of a folder holding `kube-apiserver` and `etcd` binaries, for
# envtest (BinaryAssetsDirectory / KUBEBUILDER_ASSETS).
#
# The binaries are built from the Go modules pinned in this folder's go.mod
# (k8s.io/kubernetes, go.etcd.io/etcd/server/v3), because setup-envtest cannot
# download them here. They are cached under
#   ${XDG_CACHE_HOME:-$HOME/.cache}/event-mesh-broadcaster/apiserver-<sha256 of go.sum>/
# so only the first call builds (cold: ~7-8 minutes on 2 cores; with a warm Go
# build cache, seconds). The build goes to a temporary folder that is renamed
# into place only once both binaries work, so an interrupted build never leaves
# a half-filled cache. Concurrent callers wait on a lock instead of building twice.
#
# Only the folder path goes to stdout; progress messages go to stderr.
#
# Usage: export KUBEBUILDER_ASSETS="$(test/tools/apiserver/build.sh)"
set -euo pipefail

log() { printf 'apiserver/build.sh: %s\n' "$*" >&2; }

GO="${GO:-go}"
module_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache_root="${XDG_CACHE_HOME:-$HOME/.cache}/event-mesh-broadcaster"
hash="$(sha256sum "$module_dir/go.sum" | cut -d' ' -f1)"
final="$cache_root/apiserver-$hash"

complete() {
	[[ -x "$1/kube-apiserver" && -x "$1/etcd" ]]
}

if complete "$final"; then
	printf '%s\n' "$final"
	exit 0
fi

mkdir -p "$cache_root"

# Serialize builders; whoever gets the lock second finds the cache filled.
exec 9>"$cache_root/apiserver.lock"
if command -v flock >/dev/null 2>&1 && ! flock -n 9; then
	log "another build is running; waiting for $cache_root/apiserver.lock"
	flock 9
fi
if complete "$final"; then
	printf '%s\n' "$final"
	exit 0
fi

# Same filesystem as $final, so the final mv is an atomic rename.
tmp="$(mktemp -d "$cache_root/.apiserver-$hash.tmp.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

cd "$module_dir"
export GOWORK=off CGO_ENABLED=0

k8s_version="$("$GO" list -mod=readonly -m -f '{{.Version}}' k8s.io/kubernetes)"
etcd_version="$("$GO" list -mod=readonly -m -f '{{.Version}}' go.etcd.io/etcd/server/v3)"
k8s_major="${k8s_version#v}"; k8s_major="${k8s_major%%.*}"
k8s_minor="${k8s_version#v*.}"; k8s_minor="${k8s_minor%%.*}"

# What Kubernetes' own build (hack/lib/version.sh) stamps, so that
# `kube-apiserver --version` and the /version endpoint report the real release.
k8s_ldflags=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
	k8s_ldflags+=" -X $pkg.gitVersion=$k8s_version"
	k8s_ldflags+=" -X $pkg.gitMajor=$k8s_major -X $pkg.gitMinor=$k8s_minor"
	k8s_ldflags+=" -X $pkg.gitTreeState=clean"
done

start=$SECONDS
log "building kube-apiserver $k8s_version and etcd $etcd_version into $final"
log "(cold build takes several minutes; later builds reuse the Go build cache)"

log "go build k8s.io/kubernetes/cmd/kube-apiserver"
"$GO" build -mod=readonly -trimpath -ldflags "$k8s_ldflags" \
	-o "$tmp/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver >&2

log "go build go.etcd.io/etcd/server/v3"
"$GO" build -mod=readonly -trimpath \
	-o "$tmp/etcd" go.etcd.io/etcd/server/v3 >&2

# Smoke test before publishing the cache entry.
"$tmp/kube-apiserver" --version >&2
"$tmp/etcd" --version >&2

chmod 755 "$tmp"
if ! mv -T "$tmp" "$final" 2>/dev/null; then
	# Someone without flock (or a stale leftover) got there first.
	if complete "$final"; then
		log "another build finished first; using it"
	else
		log "replacing incomplete $final"
		rm -rf "$final"
		mv -T "$tmp" "$final"
	fi
fi
trap - EXIT
rm -rf "$tmp"

log "done in $((SECONDS - start))s"
printf '%s\n' "$final"
