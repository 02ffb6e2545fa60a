#!/usr/bin/env bash
# compare.sh: benchstat tables of natspipe results.
#
# usage:
#   scripts/compare.sh suite FILE       the study's summary: P0..P4 side by side
#                                       (benchstat -col /impl over BenchmarkSuite)
#   scripts/compare.sh transports FILE  the broker comparison: one column per
#                                       transport (benchstat -col /transport)
#   scripts/compare.sh OLD NEW          old against new, every benchmark
#   scripts/compare.sh -- ARGS...       any benchstat arguments
# benchstat is built from the golang.org/x/perf version pinned in go.mod,
# into .bin/, when it is missing or stale.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

version=$(go list -m -f '{{.Version}}' golang.org/x/perf)
bin="$root/.bin/benchstat-$version"
if [ ! -x "$bin" ]; then
	mkdir -p "$root/.bin"
	echo "compare.sh: building benchstat $version" >&2
	go build -o "$bin" golang.org/x/perf/cmd/benchstat
fi

case "${1:-}" in
suite)
	[ $# -eq 2 ] || { echo "usage: compare.sh suite FILE" >&2; exit 2; }
	[ -r "$2" ] || { echo "compare.sh: cannot read $2" >&2; exit 2; }
	exec "$bin" -filter '.name:Suite' -col /impl "$2" ;;
transports)
	[ $# -eq 2 ] || { echo "usage: compare.sh transports FILE" >&2; exit 2; }
	[ -r "$2" ] || { echo "compare.sh: cannot read $2" >&2; exit 2; }
	grep -q '/transport=' "$2" || { echo "compare.sh: $2 has no transport=... benchmark results" >&2; exit 2; }
	exec "$bin" -col /transport "$2" ;;
--)
	shift; exec "$bin" "$@" ;;
""|-h|--help)
	sed -n '2,12p' "$0"; exit 2 ;;
*)
	[ $# -eq 2 ] || { echo "usage: compare.sh OLD NEW" >&2; exit 2; }
	for f in "$1" "$2"; do [ -r "$f" ] || { echo "compare.sh: cannot read $f" >&2; exit 2; }; done
	exec "$bin" "old=$1" "new=$2" ;;
esac
