package pipelines

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// TestAccountLines checks the account's rendering, line by line, and that
// Result.Report is the Summary followed by exactly those lines.
func TestAccountLines(t *testing.T) {
	start := time.Now()
	a := Account{
		N: 10, Stages: 4, Start: start, Completed: 6,
		Lost: []uint64{2, 5}, Late: 1, LateSeqs: []uint64{7},
		Unaccounted: []uint64{8}, Unsent: 1,
		Duplicates: 3, DuplicateSeqs: []uint64{6, 1}, // the first listed only
		Strays: 1, StrayList: []Stray{{ID: "abc", Seq: 99}},
		Rejected: 2, RejectErrs: []string{"S3: truncated envelope"},
		Violations: []string{"seq 3 skipped S2"},
		Incidents: []Incident{
			{At: start.Add(1500 * time.Millisecond), Worker: "p4-S2-w2", Kind: WorkerDied, Held: 2, Detail: "exit status 1"},
			{Worker: "p4-S2-w3", Kind: WorkerStuck, For: 2 * time.Second, Held: 1}, // no time: shown without one
		},
		EndedBy:     "timeout: gave up after 1m0s",
		LossTimeout: 5 * time.Second,
	}
	want := []string{
		"ended early: timeout: gave up after 1m0s",
		"unaccounted at the end (1, sent, neither back from S4 nor declared lost): seq 8",
		"never sent: 1 (seq 9 to 9)",
		"lost (2, never reached S4): seq 2, 5",
		"late (1, back after the 5s loss timeout): seq 7",
		"duplicates (3): seq 1, 6 ... (1 more)",
		"strays (1, envelopes of no message of this run, id/seq): abc/99",
		"incident at +1.5s: worker p4-S2-w2 died: exit status 1",
		"incident: worker p4-S2-w3 stuck: no progress for 2s while it held 1 message",
		"violation: seq 3 skipped S2",
		"rejected: S3: truncated envelope",
	}
	got := a.Lines()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("lines:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	wantCounts := "lost 2 + 1 unaccounted at the end, 1 never sent, late 1, duplicates 3, strays 1, rejected 2, 2 worker incidents (ENDED EARLY)"
	if c := a.Counts(); c != wantCounts {
		t.Errorf("counts %q,\nwant %q", c, wantCounts)
	}
	if (&Account{N: 3, Stages: 1, Completed: 3}).Lines() != nil {
		t.Error("a clean account has lines")
	}

	res := &Result{Variant: "p4", Spec: Spec{Durations: make([]time.Duration, 4)}, Account: a}
	res.Stages = 0 // a Result built by hand: the Spec names the last stage
	report := strings.Split(res.Report(), "\n")
	if report[0] != res.Summary() || !strings.HasSuffix(report[0], ", "+wantCounts) || strings.Join(report[1:], "\n") != strings.Join(want, "\n") {
		t.Errorf("report:\n%s", res.Report())
	}
	err := res.Err()
	if err == nil {
		t.Fatal("no error for a run with lost messages")
	}
	for _, part := range []string{"run p4: ended early: timeout", "1 of 10 messages unaccounted at the end (sent, neither back from S4 nor declared lost): seq 8",
		"1 of 10 messages never sent", "2 of 10 messages lost (never reached S4): seq 2, 5", "1 message late (back after the 5s loss timeout): seq 7",
		"3 duplicate completions: seq 1, 6 ... (1 more)", "worker p4-S2-w2 died", "worker p4-S2-w3 stuck"} {
		if !strings.Contains(err.Error(), part) {
			t.Errorf("error lacks %q: %v", part, err)
		}
	}
	if strings.Contains(err.Error(), "stray") || strings.Contains(err.Error(), "rejected") {
		t.Errorf("strays and rejections are not errors: %v", err)
	}

	b, jerr := json.Marshal(a)
	if jerr != nil {
		t.Fatal(jerr)
	}
	for _, key := range []string{`"lost":[2,5]`, `"late_seqs":[7]`, `"stray_list":[{"id":"abc","seq":99}]`, `"worker":"p4-S2-w2"`, `"text":"worker p4-S2-w2 died: exit status 1"`, `"loss_timeout_ns":5000000000`} {
		if !strings.Contains(string(b), key) {
			t.Errorf("json lacks %s: %s", key, b)
		}
	}
}

// TestAccountErrCut: an error lists at most errListed seqs of a set, and
// says how many more; Lines lists them all.
func TestAccountErrCut(t *testing.T) {
	a := Account{N: 200, Stages: 1, Completed: 100}
	for s := range uint64(100) {
		a.Lost = append(a.Lost, s+100)
	}
	res := &Result{Variant: "p0", Account: a}
	if err := res.Err(); err == nil || !strings.HasSuffix(err.Error(), "149 ... (50 more)") {
		t.Errorf("error %v, want the lost list cut after 50 seqs", err)
	}
	if l := a.Lines(); len(l) != 1 || !strings.HasSuffix(l[0], "198, 199") {
		t.Errorf("lines %q", l)
	}
}
