#!/usr/bin/env bash
# regress.sh: gate the working tree against BASE_REF on this machine.
#
# usage: scripts/regress.sh [BASE_REF]      (default HEAD)
# It builds test binaries of BASE_REF (in a temporary git worktree) and of the
# working tree with `go test -c`, runs them interleaved (A B A B ...) so both
# see the same machine noise, and runs `natspipe gate` on the results: exit 0
# when nothing regressed, 1 on a regression, 2 on an error.
#
# Environment:
#   REGRESS_PKG        package holding the benchmarks (default ./bench)
#   REGRESS_BENCH      benchmark regex (default '^BenchmarkSuite$/work=sleep')
#   REGRESS_BENCHTIME  per run (default 60x)
#   REGRESS_COUNT      interleaved rounds (default 6, the gate's minimum)
#   REGRESS_DURATIONS  stage times for both (default 5ms,20ms,5ms,5ms)
#   REGRESS_FILTER     benchproc filter for the gate (default: the units that
#                      mean something here: sec/op, msgs/s, eff, allocs/op)
#   REGRESS_GATE_FLAGS extra flags for natspipe gate, split on spaces
#                      (default -config testdata/gate.conf)
#   REGRESS_NEW_ENV    extra VAR=value settings for the candidate runs only,
#                      e.g. NATSPIPE_SLOWDOWN=S2=2ms to prove a slowdown is caught
#   REGRESS_OUT        directory to keep base.txt and new.txt (default: temporary)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

base=${1:-HEAD}
pkg=${REGRESS_PKG:-./bench}
bench=${REGRESS_BENCH:-'^BenchmarkSuite$/work=sleep'}
benchtime=${REGRESS_BENCHTIME:-60x}
count=${REGRESS_COUNT:-6}
durations=${REGRESS_DURATIONS:-5ms,20ms,5ms,5ms}
filter=${REGRESS_FILTER:-'.unit:(sec/op OR msgs/s OR eff OR allocs/op)'}
read -r -a gateflags <<<"${REGRESS_GATE_FLAGS:--config testdata/gate.conf}"
read -r -a newenv <<<"${REGRESS_NEW_ENV:-}"

git rev-parse --verify --quiet "$base^{commit}" >/dev/null || { echo "regress.sh: unknown ref $base" >&2; exit 2; }
tmp=$(mktemp -d)
cleanup() {
	git worktree remove --force "$tmp/base" >/dev/null 2>&1 || true
	rm -rf "$tmp"
}
trap cleanup EXIT
out=${REGRESS_OUT:-$tmp/out}
mkdir -p "$out"

echo "regress.sh: building $base and the working tree ($pkg)" >&2
git worktree add --detach --quiet "$tmp/base" "$base"
(cd "$tmp/base" && go test -c -o "$tmp/base.test" "$pkg")
go test -c -o "$tmp/new.test" "$pkg"
go build -o "$tmp/natspipe" ./cmd/natspipe

pkgdir_base="$tmp/base/${pkg#./}"
pkgdir_new="$root/${pkg#./}"
args=(-test.run='^$' -test.bench="$bench" -test.benchtime="$benchtime" -test.benchmem -test.count=1)
: >"$out/base.txt"
: >"$out/new.txt"
for i in $(seq 1 "$count"); do
	echo "regress.sh: round $i of $count" >&2
	(cd "$pkgdir_base" && NATSPIPE_DURATIONS=$durations "$tmp/base.test" "${args[@]}") >>"$out/base.txt"
	(cd "$pkgdir_new" && env NATSPIPE_DURATIONS="$durations" "${newenv[@]}" "$tmp/new.test" "${args[@]}") >>"$out/new.txt"
done
"$tmp/natspipe" gate "${gateflags[@]}" -filter "$filter" "$out/base.txt" "$out/new.txt"
