#!/usr/bin/env bash
# compose-test.sh: natspipe's P4 pipeline in containers, with node loss.
#
# Builds the images (scripts/build-images.sh), brings up
# deploy/compose/compose.yaml under a project name of its own (a 3-node NATS
# cluster with JetStream, and the stage workers, 1-4-1-1), waits for every
# worker to announce itself, and for each transport (core, then js) runs
# natspipe run -attach from the host: N messages, and mid-run it kills one
# S2 worker container and then one NATS node container (docker kill). Then
# it checks the run's account:
#
#   core: the run completes, and every message is either back or reported
#         lost (completed + lost = N, none unaccounted for, none never sent);
#   js:   every message back (R3 stream: -replicas 3), lost 0 (-loss-timeout
#         20s: past the 5 s AckWait, so redelivered messages are not late).
#
# Between the transports the killed node and worker are started again. It
# prints each run's summary, its incidents and the workers' shares. A worker
# container that crash-loops (restarted 3 times) fails the test, with its
# logs. Whatever happens, the stack is taken down with its volumes
# (docker-compose down -v), and any container, network or volume of the
# project still there afterwards fails the test. Every docker call is
# bounded (timeout).
#
# Environment: COMPOSE_TEST_TRANSPORTS (default "core js"),
# COMPOSE_TEST_N (1000), COMPOSE_TEST_DURATIONS (2ms,12ms,2ms,2ms: short,
# yet a run lasts long enough for both kills), COMPOSE_TEST_WORK (sleep),
# COMPOSE_TEST_BUILD=0 to use the images already built.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"
start=$(date +%s)
say() { echo "== $* ($(($(date +%s) - start))s)"; }
fail() {
	echo "compose-test.sh: FAIL: $*" >&2
	exit 1
}

transports=${COMPOSE_TEST_TRANSPORTS:-core js}
n=${COMPOSE_TEST_N:-1000}
durations=${COMPOSE_TEST_DURATIONS:-2ms,12ms,2ms,2ms}
alloc=1-4-1-1
file=deploy/compose/compose.yaml
bindir=${NATSPIPE_BUILD_DIR:-.build/images}
# Lower-case letters, digits and dashes: the same name in docker-compose v1 and v2.
project=natspipe-ct-$$-$start
work=$(mktemp -d)

# The stack's settings (deploy/compose/compose.yaml): free host ports for
# every node, so the test never meets anything else on this machine.
export NATSPIPE_IMAGE_TAG=${NATSPIPE_IMAGE_TAG:-dev}
export NATSPIPE_N1_PORT= NATSPIPE_N2_PORT= NATSPIPE_N3_PORT=
export NATSPIPE_N1_MONITOR= NATSPIPE_N2_MONITOR= NATSPIPE_N3_MONITOR=
export NATSPIPE_DURATIONS=$durations NATSPIPE_WORK=${COMPOSE_TEST_WORK:-sleep}
export NATSPIPE_S1=1 NATSPIPE_S2=4 NATSPIPE_S3=1 NATSPIPE_S4=1
# The workers' ready records, which the readiness wait below counts, are
# at info (a worker's default level, warn, prints nothing when all is well).
export NATSPIPE_LOG_LEVEL=info NATSPIPE_LOG_FORMAT=text

dc() { timeout 180 docker-compose --ansi never -p "$project" -f "$file" "$@"; }
dk() { timeout 60 docker "$@"; }

harness=
cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	if [ -n "$harness" ] && kill -0 "$harness" 2>/dev/null; then
		kill "$harness" 2>/dev/null || true
		wait "$harness" 2>/dev/null || true
	fi
	say "teardown: docker-compose -p $project down -v"
	dc down -v --remove-orphans --timeout 10 >"$work/down.log" 2>&1 || {
		cat "$work/down.log"
		rc=1
	}
	local left
	left=$(
		dk ps -a --filter "label=com.docker.compose.project=$project" --format 'container {{.Names}} ({{.Status}})'
		dk network ls --filter "name=${project}_" --format 'network {{.Name}}'
		dk volume ls --filter "name=${project}_" --format 'volume {{.Name}}'
	) || left="docker did not answer while listing what is left"
	if [ -n "$left" ]; then
		echo "compose-test.sh: FAIL: left after down -v:" >&2
		echo "$left" >&2
		rc=1
	else
		echo "nothing of $project left: no container, network or volume"
	fi
	rm -rf "$work"
	say "compose-test.sh: $([ "$rc" = 0 ] && echo PASS || echo "FAIL (exit $rc)")"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

command -v docker-compose >/dev/null || fail "docker-compose not found"
dk info >/dev/null 2>&1 || fail "the Docker engine does not answer (docker info)"

if [ "${COMPOSE_TEST_BUILD:-1}" != 0 ]; then
	say "images: scripts/build-images.sh"
	scripts/build-images.sh
fi
natspipe=$bindir/natspipe
[ -x "$natspipe" ] || fail "$natspipe not built (scripts/build-images.sh)"

# docker's own client answers in milliseconds, docker-compose's in seconds:
# the loops ask docker, by the labels docker-compose puts on containers.
# cid is the id of service $1's container(s); workers lists the workers'.
cid() {
	dk ps -aq --filter "label=com.docker.compose.project=$project" --filter "label=com.docker.compose.service=$1"
}
workers() {
	dk ps -a --filter "label=com.docker.compose.project=$project" \
		--format '{{.ID}} {{.Label "com.docker.compose.service"}}' | awk '$2 ~ /^s[0-9]+$/ {print $1}'
}
# hostport is where container port $2 of service $1 is published on the host.
hostport() { dk port "$(cid "$1")" "$2/tcp" | sed -n 1p; }

# crashloops fails, with its logs, on a worker container of $2 (ids; default
# all) that was restarted 3 times or more, or that gave up with an error,
# except the one killed on purpose, $1.
crashloops() {
	local skip=${1:-} ids=${2:-$(workers)} id name restarts status code bad=
	for id in $ids; do
		[ "$id" = "$skip" ] && continue
		read -r name restarts status code < <(dk inspect --format '{{.Name}} {{.RestartCount}} {{.State.Status}} {{.State.ExitCode}}' "$id")
		if [ "$restarts" -ge 3 ] || { [ "$status" = exited ] && [ "$code" != 0 ]; }; then
			echo "worker container ${name#/} crash-loops: restarted $restarts times, now $status (exit code $code); its logs' tail:" >&2
			dk logs --tail 6 "$id" 2>&1 | sed 's/^/    /' >&2
			bad=1
		fi
	done
	[ -z "$bad" ] || fail "a worker container crash-loops"
}

# up brings the stack up for transport $1 and waits, bounded, for the
# nodes' health and for every worker's readiness announcement.
up() {
	export NATSPIPE_TRANSPORT=$1 NATSPIPE_PREFIX=ct-$1
	say "stack up: $project, transport $1, allocation $alloc, durations $durations"
	dc up -d n1 n2 n3 >"$work/up.log" 2>&1 || {
		cat "$work/up.log"
		fail "docker-compose up (nodes)"
	}
	local node mon deadline=$(($(date +%s) + 60))
	for node in n1 n2 n3; do
		mon=$(hostport "$node" 8222)
		until curl -fsS --max-time 2 "http://$mon/healthz?js-enabled-only=true" >/dev/null 2>&1 &&
			curl -fsS --max-time 2 "http://$mon/jsz" 2>/dev/null | grep '"leader"' >/dev/null; do
			[ "$(date +%s)" -lt "$deadline" ] || fail "NATS node $node not healthy with a JetStream meta leader after 60s: $(dc logs --tail 10 "$node")"
			sleep 0.5
		done
	done
	say "nodes healthy: $(for node in n1 n2 n3; do printf '%s (client %s, monitoring %s) ' "$node" "$(hostport "$node" 4222)" "$(hostport "$node" 8222)"; done)"
	dc up -d >"$work/up.log" 2>&1 || {
		cat "$work/up.log"
		fail "docker-compose up (workers)"
	}
	local id ids ready
	deadline=$(($(date +%s) + 60))
	while :; do
		ready=0
		ids=$(workers)
		for id in $ids; do
			# grep reads it all: a grep -q ending early fails the pipe (pipefail).
			# Each worker's ready record (NATSPIPE_LOG_LEVEL=info above).
			if dk logs "$id" 2>&1 | grep -E 'level=INFO msg=ready( |$)' >/dev/null; then ready=$((ready + 1)); fi
		done
		crashloops "" "$ids"
		[ "$ready" -lt 7 ] || break
		[ "$(date +%s)" -lt "$deadline" ] || fail "only $ready of 7 workers ready after 60s: $(dc logs --tail 5 s1 s2 s3 s4)"
		sleep 0.5
	done
	say "workers ready: $ready ($(for id in $ids; do dk inspect --format '{{.Name}}' "$id"; done | tr -d / | sort | tr '\n' ' '))"
}

# run drives the stack with transport $1 and kills an S2 worker and node n3
# mid-run. The harness's seeds are n1 and n2: it is the workers' failover
# that is tested, not the harness's.
run() {
	local t=$1 out=$work/run-$1.out rc
	local url="nats://$(hostport n1 4222),nats://$(hostport n2 4222)"
	local victim node
	victim=$(dk ps -q --filter "label=com.docker.compose.project=$project" --filter "label=com.docker.compose.service=s2" | sed -n 1p)
	node=$(cid n3)
	local extra=()
	# R3, and a loss timeout past the consumers' 5 s AckWait: what the
	# killed worker held comes back redelivered, not late.
	[ "$t" = js ] && extra=(-replicas 3 -loss-timeout 20s)
	say "run: natspipe run -attach -prefix ct-$t -transport $t -alloc $alloc -durations $durations -n $n ${extra[*]}"
	timeout 150 "$natspipe" run -attach -prefix "ct-$t" -transport "$t" -alloc "$alloc" -durations "$durations" \
		-n "$n" -url "$url" -ready-timeout 30s "${extra[@]}" >"$out" 2>&1 &
	harness=$!
	local deadline=$(($(date +%s) + 45))
	until grep -q '^attached to' "$out"; do
		kill -0 "$harness" 2>/dev/null || break
		[ "$(date +%s)" -lt "$deadline" ] || fail "the harness did not attach within 45s: $(cat "$out")"
		sleep 0.1
	done
	sleep 0.5
	kill -0 "$harness" 2>/dev/null || fail "the run ended before the kills: $(cat "$out")"
	dk kill "$victim" >/dev/null
	say "killed S2 worker container $(dk inspect --format '{{.Name}}' "$victim" | tr -d /)"
	sleep 0.7
	kill -0 "$harness" 2>/dev/null || fail "the run ended before the node kill: $(cat "$out")"
	dk kill "$node" >/dev/null
	say "killed NATS node container $(dk inspect --format '{{.Name}}' "$node" | tr -d /)"
	set +e
	wait "$harness"
	rc=$?
	set -e
	harness=
	say "run over $t ended, exit status $rc; its output:"
	grep -v '^nats ' "$out" | sed 's/^/    /'
	[ "$rc" = 0 ] || [ "$rc" = 1 ] || fail "natspipe run over $t: exit status $rc (2: bad input, 124: timeout)"
	crashloops "$victim"
	check "$t" "$out"
}

# check reads the run's summary line and checks its account.
check() {
	local t=$1 line
	line=$(grep -E "^p4 over $t: [0-9]+/[0-9]+ msgs" "$2") || fail "no summary line in the output of the run over $t"
	local done total lost
	done=$(sed -E 's/^[^:]*: ([0-9]+)\/([0-9]+) msgs.*/\1/' <<<"$line")
	total=$(sed -E 's/^[^:]*: ([0-9]+)\/([0-9]+) msgs.*/\2/' <<<"$line")
	lost=$(sed -E 's/.* lost ([0-9]+).*/\1/' <<<"$line")
	[ "$total" = "$n" ] || fail "$t: $total messages in the summary, sent $n"
	case "$line" in
	*unaccounted* | *"never sent"* | *"ENDED EARLY"*) fail "$t: the account is not exact: $line" ;;
	esac
	grep -q "worker .* unresponsive" "$2" || fail "$t: the killed S2 worker was not named unresponsive"
	case $t in
	core)
		[ $((done + lost)) = "$n" ] || fail "core: $done back + $lost lost != $n sent"
		echo "core: $done back + $lost lost = $n sent: every message accounted for"
		;;
	*)
		[ "$lost" = 0 ] && [ "$done" = "$n" ] || fail "$t: $done of $n back, $lost lost; want all back, 0 lost"
		echo "$t: $done of $n back, 0 lost"
		;;
	esac
}

for t in $transports; do
	up "$t"
	run "$t"
done
