package gate

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"text/tabwriter"

	"golang.org/x/perf/benchmath"
	"golang.org/x/perf/benchunit"
)

// Format writes r as text: a benchstat-like table of every comparison
// (one block per package), then the regressions, refusals, missing
// benchmarks and warnings, then a one-line status.
func (r *Report) Format(w io.Writer) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "baseline:  %s\ncandidate: %s\n", r.Base, r.New)
	fmt.Fprintf(bw, "values: median ± %s%% confidence interval; p: Mann-Whitney U test; a regression needs p < %s and a worse change beyond the limit\n",
		strconv.FormatFloat(r.Confidence*100, 'g', -1, 64), strconv.FormatFloat(r.Alpha, 'g', -1, 64))

	var tw *tabwriter.Writer
	pkg := "\x00"
	for _, c := range r.Comparisons {
		if c.Pkg != pkg {
			if tw != nil {
				tw.Flush()
			}
			pkg = c.Pkg
			fmt.Fprintln(bw)
			if pkg != "" {
				fmt.Fprintf(bw, "pkg: %s\n", pkg)
			}
			tw = tabwriter.NewWriter(bw, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "benchmark\tunit\tbaseline\tcandidate\tchange\tp\tn\tlimit\tverdict")
		}
		fmt.Fprintln(tw, formatRow(c))
	}
	if tw != nil {
		tw.Flush()
	}

	if regs := r.Regressions(); len(regs) > 0 {
		fmt.Fprintf(bw, "\nRegressions (%d):\n", len(regs))
		for _, c := range regs {
			fmt.Fprintf(bw, "  %s %s: %s worse (%s -> %s), p=%.3f, limit %s (%s)\n",
				c.Name, c.Unit, formatChange(c.Change), formatPlain(c.Base.Center, c.Unit), formatPlain(c.New.Center, c.Unit),
				c.P, formatLimit(c), c.ThresholdSource)
		}
	}
	if len(r.Refused) > 0 {
		what := "not judged, the gate is incomplete"
		if r.AllowSmall {
			what = "not judged, allowed as warnings"
		}
		fmt.Fprintf(bw, "\nRefused (%d, %s):\n", len(r.Refused), what)
		for _, rf := range r.Refused {
			fmt.Fprintf(bw, "  %s\n", rf)
		}
	}
	pkgs := map[string]bool{}
	for _, c := range r.Comparisons {
		pkgs[c.Pkg] = true
	}
	for _, m := range r.Missing {
		pkgs[m.Pkg] = true
	}
	for _, where := range []string{"baseline", "candidate"} {
		lines := missingLines(r.Missing, where, len(pkgs) > 1)
		if len(lines) == 0 {
			continue
		}
		fmt.Fprintf(bw, "\nOnly in %s (%d):\n", where, len(lines))
		for _, l := range lines {
			fmt.Fprintf(bw, "  %s\n", l)
		}
	}
	var notes []string
	notes = append(notes, r.Warnings...)
	for _, c := range r.Comparisons {
		for _, w := range c.Warnings {
			notes = append(notes, fmt.Sprintf("%s %s: %s", c.Name, c.Unit, w))
		}
	}
	if len(notes) > 0 {
		fmt.Fprintf(bw, "\nWarnings (%d):\n", len(notes))
		for _, n := range notes {
			fmt.Fprintf(bw, "  %s\n", n)
		}
	}

	counts := map[Verdict]int{}
	for _, c := range r.Comparisons {
		counts[c.Verdict]++
	}
	var extra []string
	for _, v := range []Verdict{Improved, Tolerated, Refused} {
		if counts[v] > 0 {
			extra = append(extra, fmt.Sprintf("%d %s", counts[v], v))
		}
	}
	if n := len(r.Missing); n > 0 {
		extra = append(extra, fmt.Sprintf("%d missing", n))
	}
	tail := ""
	if len(extra) > 0 {
		tail = " (" + strings.Join(extra, ", ") + ")"
	}
	fmt.Fprintf(bw, "\ngate: %s: %d regressed of %d comparisons%s\n", r.Status(), counts[Regressed], len(r.Comparisons), tail)
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("writing report: %w", err)
	}
	return nil
}

func formatRow(c Comparison) string {
	sc := benchunit.CommonScale([]float64{c.Base.Center, c.New.Center}, benchunit.ClassOf(c.Unit))
	p, change := "-", formatChange(c.Change)
	if c.Verdict != Refused {
		p = fmt.Sprintf("%.3f", c.P)
	}
	return strings.Join([]string{
		c.Name, c.Unit,
		formatSummary(sc, c.Base), formatSummary(sc, c.New),
		change, p,
		fmt.Sprintf("%d+%d", c.Base.N, c.New.N),
		formatLimit(c),
		c.Verdict.String(),
	}, "\t")
}

func formatSummary(sc benchunit.Scaler, s Summary) string {
	bs := benchmath.Summary{Center: s.Center, Lo: s.Lo, Hi: s.Hi, Confidence: s.Confidence}
	return sc.Format(s.Center) + " ± " + bs.PctRangeString()
}

func formatPlain(v float64, unit string) string {
	return benchunit.Scale(v, benchunit.ClassOf(unit))
}

func formatChange(ch float64) string {
	if math.IsInf(ch, 0) {
		if ch > 0 {
			return "+Inf%"
		}
		return "-Inf%"
	}
	return fmt.Sprintf("%+.2f%%", ch*100)
}

// formatLimit shows the threshold with the sign of the worse direction.
func formatLimit(c Comparison) string {
	sign := "+"
	if c.Better == HigherIsBetter {
		sign = "-"
	}
	return sign + c.Threshold.String()
}

// missingLines groups r.Missing entries of one side by benchmark. With
// withPkg, each line names the package too.
func missingLines(ms []Missing, onlyIn string, withPkg bool) []string {
	var lines []string
	var last *Missing
	var units []string
	flush := func() {
		if last != nil {
			line := last.Name + ": " + strings.Join(units, ", ")
			if withPkg {
				line += " (pkg " + last.Pkg + ")"
			}
			lines = append(lines, line)
		}
	}
	for i := range ms {
		m := &ms[i]
		if m.OnlyIn != onlyIn {
			continue
		}
		if last == nil || m.Pkg != last.Pkg || m.Name != last.Name {
			flush()
			last, units = m, nil
		}
		units = append(units, m.Unit)
	}
	flush()
	return lines
}
