#!/usr/bin/env bash
# The whole test suite from a fresh machine, in one command (the README's, and what .ci/run
# runs). It installs what the suite needs and is missing, then runs the static checks and
# every test:
#   - programs from the system's packages (Chromium for test/page; podman, buildah and runc for
#     test/image): with apt-get on Debian when run as root; anywhere else it stops at once,
#     naming the packages and the command that installs them;
#   - staticcheck, pinned, into the user cache (~/.cache/event-mesh-broadcaster/);
#   - the rest the tests install themselves on first use, into the same cache: the
#     kube-apiserver and etcd built from pinned Go modules, kustomize, the npm packages of the
#     Backstage tests (the current and the previous Backstage release line), Node.js 22 and 24
#     and a Backstage app made by @backstage/create-app.
# Tests never skip: a missing piece fails the run. Arguments replace ./... as the packages to
# test (the static checks always cover the whole module).
set -euo pipefail
cd "$(dirname "$0")/.."

die() { printf 'test/run.sh: %s\n' "$*" >&2; exit 1; }

# Programs the suite runs that Go cannot build, each with the Debian package that has it.
declare -A debian_package=([chromium]=chromium [podman]=podman [buildah]=buildah [runc]=runc [mosquitto]=mosquitto)
required=(chromium podman buildah runc mosquitto) # mosquitto: test/stockclients runs one with its defaults
PATH="$PATH:/usr/sbin" # where Debian puts mosquitto

command -v go >/dev/null || die "Go is not installed (the module needs $(sed -n 's/^go //p' go.mod) or later: https://go.dev/dl/)"
command -v git >/dev/null || die "git is not installed (Debian: apt-get install -y git)"
command -v npm >/dev/null && command -v node >/dev/null ||
	die "Node.js 20 or later and npm are not installed; the Backstage tests need them (https://nodejs.org/)"
node_major="$(node -p 'process.versions.node.split(".")[0]')"
((node_major >= 20)) || die "Node.js $(node --version) is too old: the Backstage tests need 20 or later"

missing=()
for program in "${required[@]}"; do
	command -v "$program" >/dev/null || missing+=("${debian_package[$program]}")
done
if ((${#missing[@]})); then
	install="apt-get update && apt-get install -y ${missing[*]}"
	if [[ -r /etc/debian_version ]] && command -v apt-get >/dev/null && ((EUID == 0)); then
		echo "test/run.sh: installing ${missing[*]} (Debian packages the tests need)"
		export DEBIAN_FRONTEND=noninteractive
		apt-get -o DPkg::Lock::Timeout=300 update -q
		apt-get -o DPkg::Lock::Timeout=300 install -y -q "${missing[@]}"
		for program in "${required[@]}"; do
			command -v "$program" >/dev/null || die "$program is still missing after installing ${missing[*]}"
		done
	elif [[ -r /etc/debian_version ]]; then
		die "the tests need ${missing[*]}; install them as root, then run this again: sudo sh -c '$install'"
	else
		die "the tests need these programs, which are missing: ${missing[*]} (Chromium, podman, buildah, runc, Mosquitto); install them with your system's package manager (on Debian: $install), then run this again"
	fi
fi

# Static checks first: they take seconds once staticcheck is built.
staticcheck_version=v0.8.2
tools="${XDG_CACHE_HOME:-$HOME/.cache}/event-mesh-broadcaster/tools-$staticcheck_version"
if [[ ! -x "$tools/staticcheck" ]]; then
	GOBIN="$tools" go install "honnef.co/go/tools/cmd/staticcheck@$staticcheck_version"
fi
unformatted="$(gofmt -l $(git ls-files '*.go'))"
[[ -z "$unformatted" ]] || die "gofmt: these files need formatting:"$'\n'"$unformatted"
go vet ./...
"$tools/staticcheck" ./...

packages=("$@")
((${#packages[@]})) || packages=(./...)
go test -race -count=1 -timeout 30m "${packages[@]}"
