package pipelines

import (
	"fmt"
	"strings"
	"time"
)

// IncidentKind says what happened to a worker.
type IncidentKind string

// Incident kinds.
const (
	// WorkerDied: the worker's process exited without being asked to.
	WorkerDied IncidentKind = "died"
	// WorkerUnresponsive: the worker has not answered liveness requests for
	// the liveness timeout (stopped, frozen, or its connection is gone).
	WorkerUnresponsive IncidentKind = "unresponsive"
	// WorkerStuck: the worker answers but has made no progress for the
	// liveness timeout while it holds messages (a livelock, a hung step).
	WorkerStuck IncidentKind = "stuck"
	// WorkerBack: an unresponsive or stuck worker answers or progresses again.
	WorkerBack IncidentKind = "back"
)

// Incident is something that happened to one worker of a pipeline during a
// run without necessarily breaking it: a death the stage survives, a
// worker that stopped answering, one that came back.
type Incident struct {
	At     time.Time // when it was observed
	Worker string    // e.g. "p4-S2-w2"
	Kind   IncidentKind
	// For is, for WorkerUnresponsive and WorkerStuck, how long the worker
	// had been silent or idle when observed; for WorkerBack, how long it
	// was.
	For time.Duration
	// Held is how many messages the worker held (queued or in work) at its
	// last answer; -1 when unknown.
	Held int
	// Detail is, for WorkerDied, the exit status and stderr tail.
	Detail string
}

// String describes the incident in one line, e.g. "worker p4-S2-w2
// unresponsive for 2.1s (held 3 messages at its last answer)".
func (i Incident) String() string {
	held := ""
	if i.Held >= 0 {
		held = fmt.Sprintf("held %d message%s at its last answer", i.Held, plural(i.Held))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "worker %s ", i.Worker)
	switch i.Kind {
	case WorkerDied:
		b.WriteString("died")
		if i.Detail != "" {
			b.WriteString(": " + i.Detail)
		}
	case WorkerUnresponsive:
		fmt.Fprintf(&b, "unresponsive for %v", i.For.Round(100*time.Millisecond))
		if held != "" {
			b.WriteString(" (" + held + ")")
		}
	case WorkerStuck:
		fmt.Fprintf(&b, "stuck: no progress for %v", i.For.Round(100*time.Millisecond))
		if held != "" {
			b.WriteString(" while it " + strings.TrimSuffix(held, " at its last answer"))
		}
	case WorkerBack:
		fmt.Fprintf(&b, "came back after %v", i.For.Round(100*time.Millisecond))
		if i.Held >= 0 {
			fmt.Fprintf(&b, ", holding %d message%s", i.Held, plural(i.Held))
		}
	default:
		fmt.Fprintf(&b, "%s", i.Kind)
		if i.Detail != "" {
			b.WriteString(": " + i.Detail)
		}
	}
	return b.String()
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// IncidentSink is a Sink that also takes incidents. A pipeline whose
// workers can fail alone (P3, P4) reports them to its sink when the sink
// implements it; Runner does, and shows them in the run's Result.
type IncidentSink interface {
	Sink
	Incident(Incident)
}
