// Command natspipe-worker serves one stage of a natspipe pipeline over NATS:
// the worker process of the distributed variants P3 and P4. Start one per
// stage for P3, or several per stage for P4 (they share the stage's subject
// through a NATS queue group), on this machine or on any machine that
// reaches the same NATS server or cluster.
//
//	natspipe-worker -url nats://10.0.0.5:4222 -prefix demo -stage S2 -name box2-S2-a
//
// It connects, queue-subscribes to <prefix>.sK in queue group natspipe-SK,
// announces readiness on <prefix>.ready, and works until SIGTERM, SIGINT or
// a stop request on <prefix>.ctl.stop.sK, when it drains (finishes every
// message it holds) and exits 0. Exit status 1 means it could not connect,
// subscribe or drain; 2 means bad flags. Run it with -h for the flags.
//
// It is quiet unless something goes wrong: it logs through log/slog on
// stderr at -log-level warn by default (info: its ready and stopped
// records; debug: one record per message, with its correlation ID), text
// or -log-format json, defaults from NATSPIPE_LOG_LEVEL and
// NATSPIPE_LOG_FORMAT. It registers as NATS micro service "natspipe",
// with its stage, name, variant, transport, prefix and mode as metadata
// and its counts in its stats, so `nats micro ls` lists it; -metrics-addr
// serves Prometheus metrics.
package main

import (
	"os"

	"github.com/natspipe/natspipe/internal/procs"
	"github.com/natspipe/natspipe/pipelines/worker"
)

func main() {
	procs.ExitWithParent() // when started by a harness with a lifeline
	os.Exit(worker.Main(os.Args[1:], os.Stderr))
}
