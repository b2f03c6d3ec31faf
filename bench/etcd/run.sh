#!/bin/sh
# bench/etcd/run.sh: tenantkv and etcd side by side (`make bench-etcd`).
#
# Builds etcd from the Go module proxy into a cache outside the repository
# (once), builds bin/tenantkv and bin/etcdbench, and runs the comparison:
# workloads W, C and A at 1, 16 and 128 clients on 1-node and 3-node
# clusters of each. Writes bench-etcd.json and bench-etcd.html in the
# repository root and the table to stdout. Extra arguments go to etcdbench
# (bin/etcdbench --help), e.g. `run.sh --duration 5s --nodes 3`.
#
# Environment: GO (default go), ETCD_VERSION (default v3.6.16), ETCD_BIN
# (use this etcd binary instead of the cached build), XDG_CACHE_HOME.
set -eu

GO=${GO:-go}
ETCD_VERSION=${ETCD_VERSION:-v3.6.16}
root=$(cd "$(dirname "$0")/../.." && pwd)
cache=${XDG_CACHE_HOME:-$HOME/.cache}/tenantkv/etcd-$ETCD_VERSION
etcd_bin=${ETCD_BIN:-$cache/etcd}

# etcd's server module has replace directives, so `go install pkg@version`
# refuses it: build it from a throw-away module that requires it.
if [ ! -x "$etcd_bin" ]; then
	echo "building etcd $ETCD_VERSION into $cache (once)" >&2
	mkdir -p "$cache"
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' EXIT
	(
		cd "$tmp"
		export GOWORK=off GOFLAGS=-mod=mod
		"$GO" mod init etcdbuild >/dev/null 2>&1
		"$GO" get "go.etcd.io/etcd/server/v3@$ETCD_VERSION"
		"$GO" build -o "$tmp/etcd" go.etcd.io/etcd/server/v3
	)
	mv "$tmp/etcd" "$etcd_bin"
	rm -rf "$tmp"
	trap - EXIT
fi
"$etcd_bin" --version | head -1 >&2

cd "$root"
"$GO" build -o bin/tenantkv ./cmd/tenantkv
(cd bench/etcd && "$GO" build -o "$root/bin/etcdbench" ./cmd/etcdbench)

exec bin/etcdbench \
	--tenantkv-binary bin/tenantkv \
	--etcd-binary "$etcd_bin" \
	--json bench-etcd.json \
	--html bench-etcd.html \
	"$@"
