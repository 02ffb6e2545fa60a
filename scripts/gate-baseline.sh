#!/usr/bin/env bash
# gate-baseline.sh: run the gate's stable configuration and gate it against
# the committed baseline, testdata/baseline.txt. CI runs it.
#
# usage: scripts/gate-baseline.sh            gate this tree against the baseline
#        scripts/gate-baseline.sh -refresh   re-measure and overwrite the baseline
#
# The configuration is short and stable: the cross-variant suite over core NATS
# on sleep work with 5,20,5,5 ms stages, 60 messages a run, 6 runs; and
# BenchmarkOverhead over every transport, 300 messages a run, 6 runs. Only
# machine-independent units are gated: the suite's eff (throughput over the
# theoretical bound, on sleep work), allocs/op and B/op, and the overhead's
# x-raw per variant and transport (the harness's hop over a raw nats.go hop
# measured in the same run). P2's eff is not: its 60 messages are all in
# flight at once and pass in about 70 ms, so it measures the machine's CPU
# speed and stalls, not the code (scripts/regress.sh gates it against the same
# machine). Refresh the baseline on a quiet machine after a change that moves
# them on purpose, and commit it with the reason.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

baseline=testdata/baseline.txt
refresh=false
case "${1:-}" in
-refresh) refresh=true ;;
"") ;;
*) echo "usage: gate-baseline.sh [-refresh]" >&2; exit 2 ;;
esac

export NATSPIPE_DURATIONS=5ms,20ms,5ms,5ms
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# The transports are named, not left to the default policy, so the
# baseline's benchmarks do not change with it.
NATSPIPE_TRANSPORT=core scripts/bench.sh -o "$tmp/suite.txt" -count 6 -bench '^BenchmarkSuite$/work=sleep' -benchtime 60x ./bench >/dev/null
NATSPIPE_TRANSPORT=core,js scripts/bench.sh -o "$tmp/overhead.txt" -count 6 -bench '^BenchmarkOverhead$' -benchtime 300x ./bench >/dev/null
cat "$tmp/suite.txt" "$tmp/overhead.txt" >"$tmp/new.txt"
if $refresh; then
	cp "$tmp/new.txt" "$baseline"
	echo "gate-baseline.sh: wrote $baseline" >&2
	exit 0
fi
go run ./cmd/natspipe gate -config testdata/gate.conf \
	-filter '(.name:Suite AND (.unit:(allocs/op OR B/op) OR (.unit:eff AND -/impl:p2))) OR (.name:Overhead AND .unit:x-raw AND -/impl:(raw OR raw-procs))' \
	"$baseline" "$tmp/new.txt"
