#!/bin/sh
# Builds the broadcaster's container image from this checkout, without network access: a
# static binary built here (Go modules from the local module cache), the machine's CA
# certificates, a passwd/group entry for UID/GID 65532, FROM scratch (nothing is pulled).
#
#   deploy/build-image.sh                    # tag from `git describe`, e.g. ...:v0.1.0 on the tag
#   VERSION=v0.1.0 deploy/build-image.sh     # an explicit version
#   IMAGE=registry.example.com/broadcaster deploy/build-image.sh
#
# Environment: VERSION (default: git describe --tags --always --dirty), IMAGE (default
# ghcr.io/event-mesh-broadcaster/broadcaster), CA_BUNDLE (default
# /etc/ssl/certs/ca-certificates.crt), BUILDER (buildah or podman; default: whichever is
# installed, buildah first), BUILD_FLAGS (extra flags for the builder, e.g. --storage-driver vfs),
# CONTEXT_DIR (keep the build context there instead of a temporary directory).
# Prints the image reference on the last line of standard output.
set -eu

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"

VERSION=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
IMAGE=${IMAGE:-ghcr.io/event-mesh-broadcaster/broadcaster}
CA_BUNDLE=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
REVISION=$(git rev-parse HEAD 2>/dev/null || echo unknown)
# The commit's time, not the build's: the same commit gives the same labels.
CREATED=$(git log -1 --format=%cI 2>/dev/null || date -u +%Y-%m-%dT%H:%M:%SZ)

if [ -z "${BUILDER:-}" ]; then
	if command -v buildah >/dev/null 2>&1; then
		BUILDER=buildah
	elif command -v podman >/dev/null 2>&1; then
		BUILDER=podman
	else
		echo "build-image.sh: neither buildah nor podman is installed (Debian: apt-get install buildah podman)" >&2
		exit 1
	fi
fi
if [ ! -r "$CA_BUNDLE" ]; then
	echo "build-image.sh: no CA bundle at $CA_BUNDLE (Debian: apt-get install ca-certificates)" >&2
	exit 1
fi

if [ -n "${CONTEXT_DIR:-}" ]; then
	ctx=$CONTEXT_DIR
	mkdir -p "$ctx"
else
	ctx=$(mktemp -d)
	trap 'rm -rf "$ctx"' EXIT
fi

# A static binary: no libc in the image, so no cgo.
CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=$VERSION" \
	-o "$ctx/broadcaster" ./cmd/broadcaster
cp deploy/Containerfile "$ctx/Containerfile"
cp "$CA_BUNDLE" "$ctx/ca-certificates.crt"
printf 'root:x:0:0:root:/:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$ctx/passwd"
printf 'root:x:0:\nnonroot:x:65532:\n' >"$ctx/group"

ref="$IMAGE:$VERSION"
case $BUILDER in
buildah) build="buildah ${BUILD_FLAGS:-} bud" ;;
*) build="$BUILDER ${BUILD_FLAGS:-} build" ;;
esac
# shellcheck disable=SC2086 # BUILD_FLAGS is a list of flags
$build --pull=never \
	--build-arg "VERSION=$VERSION" --build-arg "REVISION=$REVISION" --build-arg "CREATED=$CREATED" \
	-f "$ctx/Containerfile" -t "$ref" "$ctx" >&2
echo "$ref"
