package analysis

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"slices"
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
	// Keys is how many leading columns name a row (1 when 0): a table
	// split to fit a width repeats them in every part.
	Keys int
	// Breaks are the columns where a group of columns that belong
	// together starts; a table too wide for its width is split between
	// groups only. Without breaks, every column is a group.
	Breaks []int
}

// TextWidth is the width natspipe analyze fits its text to by default.
const TextWidth = 100

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
		Breaks: []int{5, 8},
	}
	stages := Table{
		Title: "stages",
		Header: []string{"run", "stage", "defined", "workers", "msgs",
			"svc-p50", "svc-p90", "svc-p99", "wait-p50", "wait-p90", "wait-p99", "util"},
		Notes: []string{
			"svc: service time (end - start); wait: queue wait (start - arrival); util: busy time / (workers x wall time); * marks the bottleneck",
		},
		Keys:   2,
		Breaks: []int{5, 8, 11},
	}
	openLoop := Table{
		Title: "open loop",
		Header: []string{"run", "rate", "offered", "p50", "p99", "p99.9",
			"send-p50", "send-p99", "send-p99.9", "pubdelay-p50", "pubdelay-p99", "pubdelay-max"},
		Notes: []string{
			"p50..p99.9: latency from the intended send; send-*: from the actual send (hides the source's own delays); pubdelay: actual send - intended send",
		},
		Breaks: []int{3, 6, 9},
	}
	configs := Table{
		Title:  "configurations",
		Header: []string{"run", "variant", "transport", "stage times", "work", "source", "workers", "nats", "trace"},
		Notes:  []string{"transport: the broker transport (core NATS, JetStream, RabbitMQ, Kafka); name@stand-in when a fake served it (its timings are not the broker's)", "source: closed loop with its window, or open loop at its rate; workers: per stage, distinct workers seen (or given)"},
		Breaks: []int{8},
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
// (AccountText), under the title "accounts". It uses the full width the
// tables need (WriteTextWidth with width 0).
func (rep *Report) WriteText(w io.Writer) error {
	return rep.WriteTextWidth(w, 0)
}

// WriteTextWidth writes what WriteText does, fitted to width columns when
// width > 0: a table too wide is split between its groups of columns into
// parts titled "TITLE (continued)", each repeating the row's key columns
// (the run, and the stage); a cell still too long is shortened in the
// middle with "…"; notes and account lines are wrapped at spaces, their
// continuation lines indented.
func (rep *Report) WriteTextWidth(w io.Writer, width int) error {
	var b strings.Builder
	first := true
	for _, t := range rep.Tables() {
		for _, part := range t.fit(width) {
			if !first {
				b.WriteByte('\n')
			}
			first = false
			part.write(&b, width)
		}
	}
	b.WriteString("\naccounts\n")
	for i, r := range rep.Runs {
		if i > 0 {
			b.WriteByte('\n')
		}
		for _, l := range r.AccountText() {
			for _, wl := range wrap(l, width, "", "    ") {
				b.WriteString(wl + "\n")
			}
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// widths is each column's width: its widest cell or header.
func (t Table) widths() []int {
	widths := make([]int, len(t.Header))
	for _, row := range append([][]string{t.Header}, t.Rows...) {
		for i, c := range row {
			widths[i] = max(widths[i], utf8.RuneCountInString(c))
		}
	}
	return widths
}

// lineWidth is the width of a line of columns cols, two spaces apart.
func lineWidth(widths []int, cols []int) int {
	n := 2 * (len(cols) - 1)
	for _, c := range cols {
		n += widths[c]
	}
	return n
}

// fit splits t into parts no wider than width (0: no limit), between its
// groups of columns (see balance), each part with t's key columns first;
// the last part has the notes. A part still too wide has its widest cells shortened.
func (t Table) fit(width int) []Table {
	widths := t.widths()
	keys := max(1, t.Keys)
	all := make([]int, len(t.Header))
	for i := range all {
		all[i] = i
	}
	if width <= 0 || lineWidth(widths, all) <= width || len(t.Header) <= keys {
		return []Table{t}
	}
	var groups [][]int
	for c := keys; c < len(t.Header); c++ {
		if len(groups) == 0 || len(t.Breaks) == 0 || slices.Contains(t.Breaks, c) {
			groups = append(groups, nil)
		}
		groups[len(groups)-1] = append(groups[len(groups)-1], c)
	}
	parts := balance(groups, func(cols []int) int {
		return lineWidth(widths, append(slices.Clone(all[:keys]), cols...))
	}, width)
	for i := range parts {
		parts[i] = append(slices.Clone(all[:keys]), parts[i]...)
	}
	out := make([]Table, len(parts))
	for i, cols := range parts {
		p := Table{Title: t.Title, Keys: keys}
		if i > 0 {
			p.Title += " (continued)"
		}
		if i == len(parts)-1 {
			p.Notes = t.Notes
		}
		pick := func(row []string) []string {
			r := make([]string, len(cols))
			for j, c := range cols {
				r[j] = row[c]
			}
			return r
		}
		p.Header = pick(t.Header)
		for _, row := range t.Rows {
			p.Rows = append(p.Rows, pick(row))
		}
		p.shorten(width)
		out[i] = p
	}
	return out
}

// balance splits groups, in order, into the fewest runs of consecutive
// groups whose columns each fit width (by lineOf), and among the splits
// into that many the one whose widest part is narrowest, so the parts
// come out even rather than a full one and a stub. A group wider than
// width alone is a part of its own.
func balance(groups [][]int, lineOf func([]int) int, width int) [][]int {
	flat := func(gs [][]int) []int { return slices.Concat(gs...) }
	// The fewest parts: greedy, which is optimal for consecutive runs.
	n, start := 0, 0
	for start < len(groups) {
		end := start + 1
		for end < len(groups) && lineOf(flat(groups[start:end+1])) <= width {
			end++
		}
		n, start = n+1, end
	}
	var best [][]int
	bestWidth := 0
	var try func(from, left int, acc [][]int, widest int)
	try = func(from, left int, acc [][]int, widest int) {
		if left == 1 {
			last := flat(groups[from:])
			w := max(widest, lineOf(last))
			if best == nil || w < bestWidth {
				best, bestWidth = append(slices.Clone(acc), last), w
			}
			return
		}
		for end := from + 1; end <= len(groups)-left+1; end++ {
			part := flat(groups[from:end])
			try(end, left-1, append(acc, part), max(widest, lineOf(part)))
		}
	}
	try(0, n, nil, 0)
	return best
}

// shorten shortens the widest column's cells, in the middle, until the
// table fits width or no column is wider than 8.
func (t *Table) shorten(width int) {
	for {
		widths := t.widths()
		all := make([]int, len(widths))
		for i := range all {
			all[i] = i
		}
		over := lineWidth(widths, all) - width
		widest := 0
		for i, w := range widths {
			if w > widths[widest] {
				widest = i
			}
		}
		if over <= 0 || widths[widest] <= 8 {
			return
		}
		limit := max(8, widths[widest]-over)
		for _, row := range append([][]string{t.Header}, t.Rows...) {
			row[widest] = ellipsis(row[widest], limit)
		}
	}
}

// ellipsis shortens s to n runes, replacing its middle with "…".
func ellipsis(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	head := (n - 1) / 2
	tail := n - 1 - head
	return string(r[:head]) + "…" + string(r[len(r)-tail:])
}

// wrap breaks s at spaces into lines no wider than width (0: no limit), the
// first prefixed by first, the rest by rest; a word longer than a line is
// cut.
func wrap(s string, width int, first, rest string) []string {
	if width <= 0 || utf8.RuneCountInString(first+s) <= width {
		return []string{first + s}
	}
	room := max(1, width-utf8.RuneCountInString(rest))
	var words []string
	for _, word := range strings.Fields(s) {
		for r := []rune(word); len(r) > 0; {
			n := min(len(r), room)
			words, r = append(words, string(r[:n])), r[n:]
		}
	}
	var lines []string
	line := first
	empty := true
	for _, word := range words {
		if !empty && utf8.RuneCountInString(line)+1+utf8.RuneCountInString(word) > width {
			lines = append(lines, line)
			line, empty = rest, true
		}
		if !empty {
			line += " "
		}
		line += word
		empty = false
	}
	return append(lines, line)
}

func (t Table) write(b *strings.Builder, width int) {
	widths := t.widths()
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
		for _, l := range wrap(n, width, "  ", "    ") {
			b.WriteString(l + "\n")
		}
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
