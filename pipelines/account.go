package pipelines

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Account is a run's account of its messages, by seq: which came back,
// which were lost, late, left unaccounted by an early end or never sent,
// the duplicates and strays, the rejected malformed messages, the
// violations and what happened to the workers. A Result embeds it, and a
// trace's header converts to one (trace.Meta.Account), so natspipe run,
// natspipe analyze and the library all say the same thing in the same
// words: Counts and Lines are the only renderings.
//
// The sets:
//
//   - Lost: declared lost (not back within LossTimeout of the send) and
//     never back while the run lasted;
//   - LateSeqs: declared lost, then back after all: completed, not lost;
//   - Unaccounted: sent, neither back nor declared lost when the run ended
//     early (EndedBy); Unsent: never sent by a run that ended early; of an
//     interrupted run (Interrupted), the messages still in flight when its
//     drain ended, and those its stopped source never sent;
//   - DuplicateSeqs: a second (or later) completion of a message;
//   - StrayList: a valid envelope of no message of this run.
type Account struct {
	// N is the number of messages the run was asked to send; 0 when
	// unknown (a CSV trace).
	N int `json:"n"`
	// Stages is the pipeline's stage count, to name the last stage.
	Stages int `json:"stages"`
	// Start is when the run started; incidents are shown at their time
	// into the run. Zero when unknown: then they are shown without it.
	Start time.Time `json:"start,omitzero"`
	// Completed counts the messages that came back, Late ones included.
	Completed int `json:"completed"`
	// Lost lists, ascending, the seqs declared lost (not back within
	// LossTimeout of their send) that never came back while the run lasted.
	Lost []uint64 `json:"lost"`
	// Late counts, and LateSeqs lists ascending, the messages declared lost
	// that came back after all: completed, not lost.
	Late     int      `json:"late"`
	LateSeqs []uint64 `json:"late_seqs,omitempty"`
	// Unaccounted lists, ascending, the messages sent that were neither back
	// nor declared lost when the run ended early (EndedBy): a fault, the
	// timeout or a failed send. Empty for a run that ran to its end.
	Unaccounted []uint64 `json:"unaccounted,omitempty"`
	// Unsent counts the messages a run that ended early never sent: the
	// seqs from N-Unsent to N-1.
	Unsent int `json:"unsent,omitempty"`
	// Duplicates counts, and DuplicateSeqs lists (the first MaxListed), the
	// completions of a message that had already come back.
	Duplicates    int      `json:"duplicates"`
	DuplicateSeqs []uint64 `json:"duplicate_seqs,omitempty"`
	// Strays counts, and StrayList lists (the first MaxListed), the valid
	// envelopes that came back with a correlation ID or seq of no message
	// of this run (another run's, one from before this run started).
	Strays    int     `json:"strays"`
	StrayList []Stray `json:"stray_list,omitempty"`
	// AtLeastOnce says the run's transport may deliver a message more than
	// once: its duplicates are expected, not a problem.
	AtLeastOnce bool `json:"at_least_once,omitempty"`
	// Redeliveries counts, by stage ("S2"; "done" for the sink's input),
	// the deliveries after a message's first by an at-least-once transport;
	// nil when there were none.
	Redeliveries map[string]int `json:"redeliveries,omitempty"`
	// Rejected counts the malformed messages refused by stages or the
	// sink; RejectErrs holds the first few rejections.
	Rejected   int      `json:"rejected"`
	RejectErrs []string `json:"reject_errs,omitempty"`
	// Violations are messages that skipped a stage, repeated one, or
	// finished one too soon.
	Violations []string `json:"violations,omitempty"`
	// Incidents lists what happened to workers during the run (P3, P4):
	// deaths, workers that stopped answering and came back.
	Incidents []Incident `json:"incidents,omitempty"`
	// EndedBy says why the run ended before every message was accounted
	// for ("fault: ...", "timeout: ...", "send failed: ...", "interrupted:
	// ..." when its caller stopped it: see Interrupted); empty when it ran
	// to its end.
	EndedBy string `json:"ended_by,omitempty"`
	// LossTimeout is how long after its send a message was declared lost;
	// 0 when unknown.
	LossTimeout time.Duration `json:"loss_timeout_ns,omitempty"`
}

// endedInterrupted starts the EndedBy of a run its caller stopped.
const endedInterrupted = "interrupted"

// Interrupted reports whether the run was stopped by its caller (Ctrl-C)
// before every message was accounted for: its account is partial. Its
// Unaccounted messages were in flight when it stopped (sent, not back
// within the drain: interrupted, not lost), its Unsent never sent. A trace
// records it in its header's ended_by, so natspipe analyze says it too.
func (a *Account) Interrupted() bool {
	return strings.HasPrefix(a.EndedBy, endedInterrupted+":")
}

// inFlight names the Unaccounted set: in flight at the interrupt, or
// unaccounted at an early end.
func (a *Account) inFlight() string {
	if a.Interrupted() {
		return "in flight at the interrupt"
	}
	return "unaccounted at the end"
}

// lastStage names the last stage, for "never reached S4".
func (a *Account) lastStage() string {
	if a.Stages < 1 {
		return "the last stage"
	}
	return StageName(a.Stages - 1)
}

// lossTimeout is "the 5s loss timeout", or "the loss timeout" when unknown.
func (a *Account) lossTimeout() string {
	if a.LossTimeout <= 0 {
		return "the loss timeout"
	}
	return fmt.Sprintf("the %v loss timeout", a.LossTimeout)
}

// listed is ": seq 3, 7, 12" for seqs, ascending, at most show of them
// (all when show <= 0), with " ... (n more)" for the count's messages not
// shown (the list may hold fewer than count: the first MaxListed); "" when
// the list is empty (an old trace that has only the count).
func listed(seqs []uint64, count, show int) string {
	if len(seqs) == 0 {
		return ""
	}
	seqs = slices.Sorted(slices.Values(seqs))
	if show > 0 && len(seqs) > show {
		seqs = seqs[:show]
	}
	s := ": " + seqList(seqs, 0)
	if more := count - len(seqs); more > 0 {
		s += fmt.Sprintf(" ... (%d more)", more)
	}
	return s
}

// Counts is the account in one line, as the run's Summary ends: "lost 3 +
// 2 unaccounted at the end, 1 never sent, late 0, duplicates 0, strays 0,
// rejected 0, 1 worker incident (ENDED EARLY)"; for an interrupted run
// "lost 0 + 2 in flight at the interrupt, 2788 never sent, ...
// (INTERRUPTED: partial, 212 of 3000 sent)".
func (a *Account) Counts() string {
	var b strings.Builder
	fmt.Fprintf(&b, "lost %d", len(a.Lost))
	if len(a.Unaccounted) > 0 {
		fmt.Fprintf(&b, " + %d %s", len(a.Unaccounted), a.inFlight())
	}
	if a.Unsent > 0 {
		fmt.Fprintf(&b, ", %d never sent", a.Unsent)
	}
	fmt.Fprintf(&b, ", late %d, duplicates %d, strays %d, rejected %d", a.Late, a.Duplicates, a.Strays, a.Rejected)
	if len(a.Redeliveries) > 0 {
		fmt.Fprintf(&b, ", redeliveries %s", FormatRedeliveries(a.Redeliveries))
	}
	if n := len(a.Incidents); n > 0 {
		fmt.Fprintf(&b, ", %d worker incident%s", n, plural(n))
	}
	switch {
	case a.Interrupted() && a.N > 0:
		fmt.Fprintf(&b, " (INTERRUPTED: partial, %d of %d sent)", a.N-a.Unsent, a.N)
	case a.Interrupted():
		b.WriteString(" (INTERRUPTED: partial)")
	case a.EndedBy != "":
		b.WriteString(" (ENDED EARLY)")
	}
	return b.String()
}

// Lines renders the account line by line, every set in full: the early
// end, then one line per set of messages that did not simply complete,
// each listing every seq (unaccounted at the end, never sent, lost, late,
// duplicates) or correlation ID and seq (strays), then the worker
// incidents with their time into the run, the violations and the first
// rejections. None for a run whose every message simply completed.
// Result.Report prints them under the Summary; natspipe analyze prints
// them for each trace.
func (a *Account) Lines() []string {
	var out []string
	line := func(format string, args ...any) { out = append(out, fmt.Sprintf(format, args...)) }
	last := a.lastStage()
	if a.EndedBy != "" {
		line("ended early: %s", a.EndedBy)
	}
	if len(a.Unaccounted) > 0 {
		line("%s (%d, sent, neither back from %s nor declared lost)%s",
			a.inFlight(), len(a.Unaccounted), last, listed(a.Unaccounted, len(a.Unaccounted), 0))
	}
	if a.Unsent > 0 {
		if a.N >= a.Unsent {
			line("never sent: %d (seq %d to %d)", a.Unsent, a.N-a.Unsent, a.N-1)
		} else {
			line("never sent: %d", a.Unsent)
		}
	}
	if len(a.Lost) > 0 {
		line("lost (%d, never reached %s)%s", len(a.Lost), last, listed(a.Lost, len(a.Lost), 0))
	}
	if a.Late > 0 {
		line("late (%d, back after %s)%s", a.Late, a.lossTimeout(), listed(a.LateSeqs, a.Late, 0))
	}
	if a.Duplicates > 0 {
		kind := ""
		if a.AtLeastOnce {
			kind = ", expected of an at-least-once transport: the first kept"
		}
		line("duplicates (%d%s)%s", a.Duplicates, kind, listed(a.DuplicateSeqs, a.Duplicates, 0))
	}
	if len(a.Redeliveries) > 0 {
		line("redeliveries by stage: %s", FormatRedeliveries(a.Redeliveries))
	}
	if a.Strays > 0 {
		ids := make([]string, len(a.StrayList))
		for i, st := range a.StrayList {
			ids[i] = fmt.Sprintf("%s/%d", st.ID, st.Seq)
		}
		list := ""
		if len(ids) > 0 {
			list = ": " + strings.Join(ids, ", ")
			if a.Strays > len(ids) {
				list += fmt.Sprintf(" ... (%d more)", a.Strays-len(ids))
			}
		}
		line("strays (%d, envelopes of no message of this run, id/seq)%s", a.Strays, list)
	}
	for _, in := range a.Incidents {
		at := ""
		if !a.Start.IsZero() && !in.At.IsZero() {
			at = fmt.Sprintf(" at +%v", in.At.Sub(a.Start).Round(time.Millisecond))
		}
		line("incident%s: %s", at, in)
	}
	for _, v := range a.Violations {
		line("violation: %s", v)
	}
	for _, e := range a.RejectErrs {
		line("rejected: %s", e)
	}
	return out
}

// problems lists what makes the run wrong, each seq list cut at show (all
// when show <= 0): an early end with the messages it left unaccounted for
// or never sent, lost, late or duplicated messages, violations, and
// workers that died or were still unresponsive at the end. Rejected
// malformed messages and strays are not problems.
func (a *Account) problems(show int) []string {
	var parts []string
	last := a.lastStage()
	if a.EndedBy != "" {
		parts = append(parts, "ended early: "+a.EndedBy)
	}
	if len(a.Unaccounted) > 0 {
		parts = append(parts, fmt.Sprintf("%d of %d messages %s (sent, neither back from %s nor declared lost)%s",
			len(a.Unaccounted), a.N, a.inFlight(), last, listed(a.Unaccounted, len(a.Unaccounted), show)))
	}
	if a.Unsent > 0 {
		parts = append(parts, fmt.Sprintf("%d of %d messages never sent", a.Unsent, a.N))
	}
	if len(a.Lost) > 0 {
		parts = append(parts, fmt.Sprintf("%d of %d messages lost (never reached %s)%s",
			len(a.Lost), a.N, last, listed(a.Lost, len(a.Lost), show)))
	}
	if a.Late > 0 {
		parts = append(parts, fmt.Sprintf("%d message%s late (back after %s)%s",
			a.Late, plural(a.Late), a.lossTimeout(), listed(a.LateSeqs, a.Late, show)))
	}
	if a.Duplicates > 0 && !a.AtLeastOnce {
		parts = append(parts, fmt.Sprintf("%d duplicate completion%s%s", a.Duplicates, plural(a.Duplicates),
			listed(a.DuplicateSeqs, a.Duplicates, show)))
	}
	if len(a.Violations) > 0 {
		parts = append(parts, fmt.Sprintf("%d violations: %s", len(a.Violations), strings.Join(a.Violations, "; ")))
	}
	for _, in := range a.openIncidents() {
		parts = append(parts, in.String())
	}
	return parts
}

// openIncidents are the deaths, and the unresponsive or stuck spells that
// had not ended when the run did, in order.
func (a *Account) openIncidents() []Incident {
	var out []Incident
	open := map[string]int{} // worker -> index in out of its open spell
	for _, in := range a.Incidents {
		switch in.Kind {
		case WorkerDied:
			out = append(out, in)
		case WorkerUnresponsive, WorkerStuck:
			if _, ok := open[in.Worker]; !ok {
				open[in.Worker] = len(out)
				out = append(out, in)
			}
		case WorkerBack:
			if i, ok := open[in.Worker]; ok {
				out[i].Kind = WorkerBack // closed: dropped below
				delete(open, in.Worker)
			}
		}
	}
	return slices.DeleteFunc(out, func(in Incident) bool { return in.Kind == WorkerBack })
}

// MarshalJSON writes the incident with snake_case keys, as the trace
// header does, and its whole text: {"at": "...", "worker": "p4-S2-w2",
// "kind": "died", "for_ns": 0, "held": 3, "detail": "...", "text": "..."}.
func (i Incident) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		At     time.Time     `json:"at,omitzero"`
		Worker string        `json:"worker"`
		Kind   IncidentKind  `json:"kind"`
		For    time.Duration `json:"for_ns,omitempty"`
		Held   int           `json:"held"`
		Detail string        `json:"detail,omitempty"`
		Text   string        `json:"text"`
	}{i.At, i.Worker, i.Kind, i.For, i.Held, i.Detail, i.String()})
}
