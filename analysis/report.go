package analysis

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Table is a titled table of formatted cells, for text or HTML output.
type Table struct {
	Title  string
	Header []string
	Rows   [][]string
	Notes  []string // lines printed under the table
}

// Tables returns the report's tables: the configurations, the runs side by
// side, the stages of every run, and, when any run is open-loop, the
// open-loop figures.
func (rep *Report) Tables() []Table {
	runs := Table{
		Title: "runs",
		Header: []string{"run", "msgs", "lost", "late", "unacct", "msgs/s", "bound", "eff",
			"p50", "p90", "p99", "p99.9", "max", "floor", "transit-p50"},
		Notes: []string{
			"msgs: completed (late included); lost: declared lost, never back; late: back after that; unacct: neither, at an early end",
			"msgs/s: steady state (slope of completions over the middle 80%); bound: the configuration's theoretical throughput; eff = msgs/s / bound",
			"p50..max: end-to-end latency (from the intended send for open loop); floor: sum of the stage times; transit: time in messaging over all hops",
		},
	}
	stages := Table{
		Title: "stages",
		Header: []string{"run", "stage", "defined", "workers", "msgs",
			"svc-p50", "svc-p90", "svc-p99", "wait-p50", "wait-p90", "wait-p99", "util"},
		Notes: []string{
			"svc: service time (end - start); wait: queue wait (start - arrival); util: busy time / (workers x wall time); * marks the bottleneck",
		},
	}
	openLoop := Table{
		Title: "open loop",
		Header: []string{"run", "rate", "offered", "p50", "p99", "p99.9",
			"send-p50", "send-p99", "send-p99.9", "pubdelay-p50", "pubdelay-p99", "pubdelay-max"},
		Notes: []string{
			"p50..p99.9: latency from the intended send; send-*: from the actual send (hides the source's own delays); pubdelay: actual send - intended send",
		},
	}
	configs := Table{
		Title:  "configurations",
		Header: []string{"run", "variant", "transport", "stage times", "work", "source", "workers", "nats", "trace"},
		Notes:  []string{"transport: the broker transport (core NATS, JetStream, RabbitMQ, Kafka); name@stand-in when a fake served it (its timings are not the broker's)", "source: closed loop with its window, or open loop at its rate; workers: per stage, distinct workers seen (or given)"},
	}
	for _, r := range rep.Runs {
		times := make([]string, len(r.Durations))
		for i, d := range r.Durations {
			times[i] = time.Duration(math.Round(d * 1e6)).String()
		}
		source := "-"
		switch {
		case r.Rate > 0:
			source = "open " + rate(r.Rate) + "/s"
		case r.Window > 0:
			source = "window " + strconv.Itoa(r.Window)
		}
		file := "-"
		if r.Source != "" {
			file = filepath.Base(r.Source)
		}
		configs.Rows = append(configs.Rows, []string{
			r.Label, dash(r.Variant), r.TransportName(), strings.Join(times, ","), dash(r.Work), source,
			r.AllocationString(), dash(r.NATSServer), file,
		})
		runs.Rows = append(runs.Rows, []string{
			r.Label, strconv.Itoa(r.Completed), strconv.Itoa(r.Lost), strconv.Itoa(r.Late), strconv.Itoa(r.Unaccounted),
			rate(r.Throughput), rate(r.Bound), eff(r.Efficiency),
			Millis(r.Latency.P50), Millis(r.Latency.P90), Millis(r.Latency.P99), Millis(r.Latency.P999), Millis(r.Latency.Max),
			Millis(r.Floor), Millis(r.Transit.P50),
		})
		for _, s := range r.Stages {
			name := s.Name
			if name == r.Bottleneck {
				name += "*"
			}
			workers := strconv.Itoa(s.Workers)
			if s.Workers != s.WorkersSeen {
				workers += fmt.Sprintf(" (seen %d)", s.WorkersSeen)
			}
			stages.Rows = append(stages.Rows, []string{
				r.Label, name, Millis(s.Defined), workers, strconv.Itoa(s.Messages),
				Millis(s.Service.P50), Millis(s.Service.P90), Millis(s.Service.P99),
				Millis(s.Wait.P50), Millis(s.Wait.P90), Millis(s.Wait.P99),
				strconv.FormatFloat(s.Utilization, 'f', 3, 64),
			})
		}
		if o := r.OpenLoop; o != nil {
			openLoop.Rows = append(openLoop.Rows, []string{
				r.Label, rate(o.Rate), rate(o.Offered),
				Millis(r.Latency.P50), Millis(r.Latency.P99), Millis(r.Latency.P999),
				Millis(o.FromSend.P50), Millis(o.FromSend.P99), Millis(o.FromSend.P999),
				Millis(o.PublishDelay.P50), Millis(o.PublishDelay.P99), Millis(o.PublishDelay.Max),
			})
		}
	}
	out := []Table{configs, runs, stages}
	if len(openLoop.Rows) > 0 {
		out = append(out, openLoop)
	}
	return out
}

// AccountText is the run's account of its messages: a heading naming the
// run and its trace with the counts (completed, then the counts of
// natspipe run's summary), then the account's lines, word for word those
// natspipe run printed under its summary (pipelines.Account.Lines): every
// lost, late, unaccounted, duplicate and stray message by seq, the worker
// incidents at their time into the run, violations and rejections.
func (r *Run) AccountText() []string {
	a := &r.Account
	head := "account of " + r.Label
	if r.Source != "" {
		head += " (" + filepath.Base(r.Source) + ")"
	}
	if a.N > 0 {
		head += fmt.Sprintf(": %d/%d completed, ", a.Completed, a.N)
	} else {
		head += fmt.Sprintf(": %d completed, ", a.Completed)
	}
	head += a.Counts()
	if a.N == 0 {
		head += " (no header: lost counts every message not back)"
	}
	return append([]string{head}, a.Lines()...)
}

// WriteText writes the tables as aligned text, benchstat style: the first
// column left-aligned, the others right-aligned; then each run's account
// (AccountText), under the title "accounts".
func (rep *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	for i, t := range rep.Tables() {
		if i > 0 {
			b.WriteByte('\n')
		}
		t.write(&b)
	}
	b.WriteString("\naccounts\n")
	for i, r := range rep.Runs {
		if i > 0 {
			b.WriteByte('\n')
		}
		for _, l := range r.AccountText() {
			b.WriteString(l + "\n")
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func (t Table) write(b *strings.Builder) {
	widths := make([]int, len(t.Header))
	for _, row := range append([][]string{t.Header}, t.Rows...) {
		for i, c := range row {
			widths[i] = max(widths[i], utf8.RuneCountInString(c))
		}
	}
	fmt.Fprintf(b, "%s\n", t.Title)
	for _, row := range append([][]string{t.Header}, t.Rows...) {
		for i, c := range row {
			pad := strings.Repeat(" ", widths[i]-utf8.RuneCountInString(c))
			switch {
			case i == 0:
				b.WriteString(c + pad)
			default:
				b.WriteString("  " + pad + c)
			}
		}
		b.WriteByte('\n')
	}
	for _, n := range t.Notes {
		fmt.Fprintf(b, "  %s\n", n)
	}
}

// WriteJSON writes the report as indented JSON.
func (rep *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(rep); err != nil {
		return fmt.Errorf("analysis: encode json: %w", err)
	}
	return nil
}

// Millis formats a time in milliseconds with a unit and 3 significant
// figures: "850µs", "7.12ms", "41.0ms", "1.23s".
func Millis(v float64) string {
	switch {
	case v == 0:
		return "0"
	case v < 1:
		return sig3(v*1e3) + "µs"
	case v < 1000:
		return sig3(v) + "ms"
	default:
		return sig3(v/1e3) + "s"
	}
}

func sig3(v float64) string {
	switch {
	case v >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case v >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	default:
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
}

func rate(v float64) string {
	if v == 0 {
		return "-"
	}
	if v >= 1000 {
		return strconv.FormatFloat(v, 'f', 0, 64)
	}
	return strconv.FormatFloat(v, 'f', 1, 64)
}

func eff(v float64) string {
	if v == 0 {
		return "-"
	}
	return strconv.FormatFloat(v, 'f', 3, 64)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
