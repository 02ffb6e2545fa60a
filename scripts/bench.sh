#!/usr/bin/env bash
# bench.sh: run natspipe's benchmarks into a Go benchmark-format file that
# benchstat and `natspipe gate` read, with config lines saying what was run.
#
# usage: scripts/bench.sh [-o FILE] [-count N] [-bench REGEX] [-benchtime T] [PKG...]
#   -o FILE        output file (default: results/bench-<commit>-<time>.txt)
#   -count N       repetitions of each benchmark (default 10; the gate needs >= 6)
#   -bench REGEX   benchmarks to run (default .)
#   -benchtime T   per benchmark, e.g. 300x messages (default 1s)
#   PKG...         packages (default ./...)
# The environment (NATSPIPE_*, NATS_URL) passes through to the benchmarks.
set -euo pipefail
cd "$(dirname "$0")/.."

count=10 bench=. benchtime=1s out=""
while [ $# -gt 0 ]; do
	case "$1" in
	-o) out=$2; shift 2 ;;
	-count) count=$2; shift 2 ;;
	-bench) bench=$2; shift 2 ;;
	-benchtime) benchtime=$2; shift 2 ;;
	-h|--help) sed -n '2,12p' "$0"; exit 0 ;;
	-*) echo "bench.sh: unknown flag $1" >&2; exit 2 ;;
	*) break ;;
	esac
done
pkgs=("$@")
[ ${#pkgs[@]} -gt 0 ] || pkgs=(./...)
case "$count" in ''|*[!0-9]*) echo "bench.sh: -count $count: want a positive integer" >&2; exit 2 ;; esac

commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
if ! git diff --quiet HEAD 2>/dev/null; then commit="$commit-dirty"; fi
if [ -z "$out" ]; then
	mkdir -p results
	out="results/bench-$commit-$(date -u +%Y%m%dT%H%M%SZ).txt"
fi
mkdir -p "$(dirname "$out")"

server=$(go run ./cmd/natspipe server-version)

{
	echo "commit: $commit"
	echo "durations: ${NATSPIPE_DURATIONS:-10ms,40ms,10ms,10ms}"
	echo "work: ${NATSPIPE_WORK:-default}"
	echo "nats-server: $server"
	echo "benchtime: $benchtime"
	go test -run='^$' -bench="$bench" -benchtime="$benchtime" -count="$count" -benchmem "${pkgs[@]}"
} | tee "$out"
echo "bench.sh: wrote $out" >&2
