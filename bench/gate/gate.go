package gate

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/perf/benchfmt"
	"golang.org/x/perf/benchmath"
	"golang.org/x/perf/benchproc"
)

// Defaults used when the corresponding Options field is zero.
const (
	DefaultAlpha      = 0.05
	DefaultConfidence = 0.95
	DefaultMinSamples = 6
)

// Limits on the input. A value or a sample beyond them is refused: past
// them the statistics overflow, lose their meaning or take unbounded time
// (go-moremath's Mann-Whitney U test never returns on a NaN).
const (
	// MaxMagnitude is the largest absolute value a measurement may have,
	// after benchfmt tidies its unit (ns/op to sec/op, MB/s to B/s). It
	// keeps sums, differences and interpolated medians of up to
	// MaxSamples values finite.
	MaxMagnitude = 1e150
	// MaxSamples is the most samples one side may hold for one benchmark
	// and unit (a -count beyond any real use).
	MaxSamples = 10000
)

// ErrBadInput is wrapped by the errors Compare returns for input that
// cannot be judged: a non-finite, out-of-range or impossible (negative)
// measurement, too many samples, or samples the statistics fail on.
var ErrBadInput = errors.New("bad benchmark input")

// Options configures Compare. The zero value is usable: zero fields take
// the defaults above.
type Options struct {
	// Alpha is the significance level: a change counts only if
	// p < Alpha. Zero means DefaultAlpha.
	Alpha float64
	// Confidence is the level of the confidence intervals shown for
	// each median. Zero means DefaultConfidence.
	Confidence float64
	// MinSamples is the fewest samples each side needs for a
	// comparison to be judged; fewer are refused. Zero means
	// DefaultMinSamples. It is raised further when Alpha is too small
	// for the U test to reach with MinSamples samples.
	MinSamples int
	// Rules add to BuiltinRules; see the package documentation.
	Rules []Rule
	// Filter is a benchproc filter expression (for example ".unit:eff"
	// or "/work:sleep") applied to both files. Empty means everything.
	Filter string
	// AllowSmall turns refused comparisons into warnings: they no
	// longer make Report.Status Incomplete.
	AllowSmall bool
	// StrictMissing makes benchmarks present in only one file fail the
	// gate.
	StrictMissing bool
	// Units are the directions of the caller's own units (custom metrics
	// reported with b.ReportMetric), keyed by the unit as benchmarks
	// report it ("ns/hop"; the gate tidies it to "sec/hop" as benchfmt
	// does). They apply to units that no rule and no unit metadata line
	// of the files gives a direction, and override KnownUnits. Their
	// values are measurements, never negative: a negative value is
	// refused as bad input, as for KnownUnits. Nil means none.
	Units map[string]Direction
}

// An Input is a named stream in the Go benchmark format.
type Input struct {
	// Name is used in messages, normally the file name.
	Name string
	// R is the benchmark data.
	R io.Reader
}

// Verdict is the outcome of one Comparison.
type Verdict int

const (
	// Unchanged: no significant difference (or equal medians).
	Unchanged Verdict = iota
	// Improved: a significant change in the better direction.
	Improved
	// Tolerated: a significant change in the worse direction, within
	// the threshold.
	Tolerated
	// Regressed: a significant change in the worse direction beyond
	// the threshold.
	Regressed
	// Refused: too few samples to judge.
	Refused
)

// String returns the verdict as shown in the table.
func (v Verdict) String() string {
	switch v {
	case Unchanged:
		return "~"
	case Improved:
		return "improved"
	case Tolerated:
		return "tolerated"
	case Regressed:
		return "REGRESSED"
	case Refused:
		return "refused"
	}
	return fmt.Sprintf("Verdict(%d)", int(v))
}

// Summary summarises one side of a Comparison.
type Summary struct {
	// Center is the summary statistic: the median unless the unit
	// declares another assumption.
	Center float64
	// Lo and Hi bound the confidence interval; they are infinite when
	// there are too few samples for one.
	Lo, Hi float64
	// Confidence is the actual confidence level of [Lo, Hi].
	Confidence float64
	// N is the number of samples.
	N int
}

// A Comparison is the judgement of one benchmark in one unit.
type Comparison struct {
	// Pkg is the "pkg" configuration of the benchmark, possibly empty.
	Pkg string
	// Name is the full benchmark name as in the file.
	Name string
	// Unit is the tidied unit (ns/op is reported as sec/op).
	Unit string
	// Better is the unit's direction.
	Better Direction
	// Assumption is the benchmath assumption used: "nothing", "exact"
	// or "normal".
	Assumption string
	// Base and New summarise the baseline and candidate samples.
	Base, New Summary
	// Change is (New.Center-Base.Center)/|Base.Center|; ±Inf when the
	// baseline is zero and the candidate is not.
	Change float64
	// P is the p-value of the test that both samples come from one
	// distribution, in [0, 1]; NaN when the comparison was refused.
	P float64
	// Alpha is the significance level used.
	Alpha float64
	// Threshold is the threshold that applied, and ThresholdSource
	// the rule that set it.
	Threshold       Threshold
	ThresholdSource string
	// Verdict is the outcome.
	Verdict Verdict
	// Warnings are benchmath's remarks about the samples.
	Warnings []string
}

// A Refusal explains why a Comparison was not judged.
type Refusal struct {
	Pkg, Name, Unit string
	// NBase and NNew are the sample counts; Need is the minimum.
	NBase, NNew, Need int
	// AlphaBound is set when Need was raised above MinSamples by a
	// small alpha.
	AlphaBound bool
	// Alpha is the significance level used.
	Alpha float64
}

// String is the refusal message, for example
// "BenchmarkX msgs/s: 4 baseline samples, need at least 6 (use -count 6 or more)".
func (r Refusal) String() string {
	var have []string
	if r.NBase < r.Need {
		have = append(have, fmt.Sprintf("%d baseline", r.NBase))
	}
	if r.NNew < r.Need {
		have = append(have, fmt.Sprintf("%d candidate", r.NNew))
	}
	why := ""
	if r.AlphaBound {
		why = fmt.Sprintf(" for alpha=%g", r.Alpha)
	}
	return fmt.Sprintf("%s %s: %s samples, need at least %d%s (use -count %d or more)",
		r.Name, r.Unit, strings.Join(have, " and "), r.Need, why, r.Need)
}

// Missing is a benchmark and unit found in only one of the two files.
type Missing struct {
	Pkg, Name, Unit string
	// OnlyIn is "baseline" or "candidate": the file that has it.
	OnlyIn string
}

// Status is the overall outcome of a Report.
type Status int

const (
	// Pass: nothing regressed and everything could be judged.
	Pass Status = iota
	// Fail: at least one regression, or (with StrictMissing) a
	// benchmark missing from one side.
	Fail
	// Incomplete: nothing failed, but some comparisons were refused
	// for too few samples and AllowSmall was not set.
	Incomplete
)

// String returns "PASS", "FAIL" or "INCOMPLETE".
func (s Status) String() string {
	switch s {
	case Pass:
		return "PASS"
	case Fail:
		return "FAIL"
	case Incomplete:
		return "INCOMPLETE"
	}
	return fmt.Sprintf("Status(%d)", int(s))
}

// Report is the result of Compare.
type Report struct {
	// Base and New name the two inputs.
	Base, New string
	// Alpha and Confidence are the levels used.
	Alpha, Confidence float64
	// Comparisons holds every benchmark and unit present in both
	// inputs, refused ones included, in benchproc order.
	Comparisons []Comparison
	// Refused explains the comparisons with Verdict Refused.
	Refused []Refusal
	// Missing lists what only one input has.
	Missing []Missing
	// Warnings are remarks that do not change the outcome.
	Warnings []string
	// AllowSmall and StrictMissing are copied from the Options.
	AllowSmall, StrictMissing bool
}

// Regressions returns the comparisons with Verdict Regressed.
func (r *Report) Regressions() []Comparison {
	var out []Comparison
	for _, c := range r.Comparisons {
		if c.Verdict == Regressed {
			out = append(out, c)
		}
	}
	return out
}

// Status is Fail if anything regressed (or, with StrictMissing, anything
// is missing), otherwise Incomplete if comparisons were refused and
// AllowSmall is off, otherwise Pass. A regression outranks a refusal: it
// is a finding that more samples elsewhere cannot undo.
func (r *Report) Status() Status {
	if len(r.Regressions()) > 0 || (r.StrictMissing && len(r.Missing) > 0) {
		return Fail
	}
	if len(r.Refused) > 0 && !r.AllowSmall {
		return Incomplete
	}
	return Pass
}

// CompareFiles reads the two benchmark files and compares them.
func CompareFiles(basePath, newPath string, opts Options) (*Report, error) {
	bf, err := os.Open(basePath)
	if err != nil {
		return nil, fmt.Errorf("baseline: %w", err)
	}
	defer bf.Close()
	nf, err := os.Open(newPath)
	if err != nil {
		return nil, fmt.Errorf("candidate: %w", err)
	}
	defer nf.Close()
	return Compare(Input{basePath, bf}, Input{newPath, nf}, opts)
}

// Compare reads a baseline and a candidate in the Go benchmark format and
// judges every benchmark and unit they share. It returns an error for
// unreadable or empty inputs, a bad filter, and contradictory or invalid
// unit metadata; regressions are reported in the Report, not as errors.
func Compare(base, cand Input, opts Options) (*Report, error) {
	if opts.Alpha == 0 {
		opts.Alpha = DefaultAlpha
	}
	if !(opts.Alpha > 0 && opts.Alpha < 1) {
		return nil, fmt.Errorf("alpha %g: want a number between 0 and 1", opts.Alpha)
	}
	if opts.Confidence == 0 {
		opts.Confidence = DefaultConfidence
	}
	if !(opts.Confidence > 0 && opts.Confidence < 1) {
		return nil, fmt.Errorf("confidence %g: want a number between 0 and 1", opts.Confidence)
	}
	if opts.MinSamples == 0 {
		opts.MinSamples = DefaultMinSamples
	}
	if opts.MinSamples < 2 {
		return nil, fmt.Errorf("minimum sample size %d: want at least 2", opts.MinSamples)
	}
	filterExpr := opts.Filter
	if strings.TrimSpace(filterExpr) == "" {
		filterExpr = "*"
	}
	filter, err := benchproc.NewFilter(filterExpr)
	if err != nil {
		return nil, fmt.Errorf("filter %q: %w", opts.Filter, err)
	}
	var parser benchproc.ProjectionParser
	proj, unitField, err := parser.ParseWithUnit("pkg,.fullname", filter)
	if err != nil {
		return nil, fmt.Errorf("projection: %w", err)
	}
	residue := parser.Residue()

	g := &gater{
		opts:  opts,
		rules: append(BuiltinRules(), opts.Rules...),
		known: knownUnits(opts.Units),
		proj:  proj, unit: unitField, residue: residue, filter: filter,
		ids: map[benchproc.Key]ident{},
		report: &Report{
			Base: base.Name, New: cand.Name,
			Alpha: opts.Alpha, Confidence: opts.Confidence,
			AllowSmall: opts.AllowSmall, StrictMissing: opts.StrictMissing,
		},
	}
	bs, err := g.read(base, "baseline")
	if err != nil {
		return nil, err
	}
	ns, err := g.read(cand, "candidate")
	if err != nil {
		return nil, err
	}
	if err := g.compare(bs, ns); err != nil {
		return nil, err
	}
	return g.report, nil
}

// ident is the identity behind a projection key.
type ident struct{ pkg, name, unit string }

// gater holds the state of one Compare call.
type gater struct {
	opts    Options
	rules   []Rule
	known   map[string]Direction // KnownUnits and Options.Units, tidied
	proj    *benchproc.Projection
	unit    *benchproc.Field
	residue *benchproc.Projection
	filter  *benchproc.Filter
	ids     map[benchproc.Key]ident
	report  *Report
}

// side is one input, grouped.
type side struct {
	label   string
	name    string
	samples map[benchproc.Key][]float64
	// residues records, per benchmark name, the distinct residue keys
	// (configuration outside the identity) aggregated under it.
	residues map[string]map[benchproc.Key]bool
	units    benchfmt.UnitMetadataMap
}

// isMetadataError reports whether a benchfmt syntax error comes from a
// "Unit" metadata line. Those are fatal: a gate must not guess which way
// a unit improves. Errors on benchmark lines are only warnings, because
// benchmarks that print to stdout produce such lines.
func isMetadataError(msg string) bool {
	return strings.HasPrefix(msg, "metadata ") || msg == "expected key=value" || msg == "missing unit"
}

func (g *gater) read(in Input, label string) (*side, error) {
	s := &side{
		label:    label,
		name:     in.Name,
		samples:  map[benchproc.Key][]float64{},
		residues: map[string]map[benchproc.Key]bool{},
	}
	r := benchfmt.NewReader(in.R, in.Name)
	results, kept, badLines := 0, 0, 0
	var firstBad string
	for r.Scan() {
		switch rec := r.Result().(type) {
		case *benchfmt.SyntaxError:
			if isMetadataError(rec.Msg) {
				return nil, fmt.Errorf("%s: unit metadata: %w", label, rec)
			}
			if badLines == 0 {
				firstBad = rec.Error()
			}
			badLines++
		case *benchfmt.Result:
			results++
			// benchfmt strips the "Benchmark" prefix from names; put
			// it back so names read as in the file.
			name := "Benchmark" + rec.Name.String()
			if err := checkValues(rec, name, label, g.known); err != nil {
				return nil, err
			}
			if ok, _ := g.filter.Apply(rec); !ok {
				continue
			}
			kept++
			res := g.residue.Project(rec)
			if s.residues[name] == nil {
				s.residues[name] = map[benchproc.Key]bool{}
			}
			s.residues[name][res] = true
			for i, k := range g.proj.ProjectValues(rec) {
				if _, ok := g.ids[k]; !ok {
					g.ids[k] = ident{pkg: rec.GetConfig("pkg"), name: name, unit: k.Get(g.unit)}
				}
				if len(s.samples[k]) == MaxSamples {
					file, line := rec.Pos()
					return nil, fmt.Errorf("%s:%d: %s %s: %w: more than %d samples of %s", file, line, label, name, ErrBadInput, MaxSamples, rec.Values[i].Unit)
				}
				s.samples[k] = append(s.samples[k], rec.Values[i].Value)
			}
		}
	}
	if err := r.Err(); err != nil {
		return nil, fmt.Errorf("reading %s %s: %w", label, in.Name, err)
	}
	if results == 0 {
		return nil, fmt.Errorf("%s %s: no benchmark results", label, in.Name)
	}
	if kept == 0 {
		return nil, fmt.Errorf("%s %s: no benchmark results match filter %q", label, in.Name, g.opts.Filter)
	}
	if badLines > 0 {
		g.warnf("%s: ignored %d malformed benchmark line(s), first: %s", label, badLines, firstBad)
	}
	names := make([]string, 0, len(s.residues))
	for n := range s.residues {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		if len(s.residues[n]) < 2 {
			continue
		}
		keys := make([]benchproc.Key, 0, len(s.residues[n]))
		for k := range s.residues[n] {
			keys = append(keys, k)
		}
		var fields []string
		for _, f := range benchproc.NonSingularFields(keys) {
			fields = append(fields, f.Name)
		}
		g.warnf("%s: %s aggregates results whose configuration differs in: %s", label, n, strings.Join(fields, ", "))
	}
	s.units = r.Units()
	return s, nil
}

// checkValues refuses a result whose measurements the gate cannot judge:
// NaN or infinite (as written, or after benchfmt scaled the unit), beyond
// MaxMagnitude, or negative in a unit of known (KnownUnits and
// Options.Units), none of which can be negative. The error names the file
// and line.
func checkValues(rec *benchfmt.Result, name, label string, known map[string]Direction) error {
	for _, v := range rec.Values {
		// Name the value as written; "in B/s" says when it went bad
		// only as benchfmt scaled it (1e308 MB/s).
		value, unit, scaled := v.Value, v.Unit, ""
		if v.OrigUnit != "" && v.OrigUnit != v.Unit {
			value, unit, scaled = v.OrigValue, v.OrigUnit, " in "+v.Unit
		}
		var why string
		switch x := v.Value; {
		case math.IsNaN(x) || math.IsInf(x, 0):
			why = "is not a finite number" + scaled
		case math.Abs(x) > MaxMagnitude:
			why = fmt.Sprintf("is out of range: its magnitude%s is above %g", scaled, float64(MaxMagnitude))
		case x < 0 && known[v.Unit] != Unknown:
			why = "is negative, and " + unit + " cannot be"
		default:
			continue
		}
		file, line := rec.Pos()
		return fmt.Errorf("%s:%d: %s %s: %w: %s %s %s",
			file, line, label, name, ErrBadInput, strconv.FormatFloat(value, 'g', -1, 64), unit, why)
	}
	return nil
}

func (g *gater) warnf(format string, args ...any) {
	g.report.Warnings = append(g.report.Warnings, fmt.Sprintf(format, args...))
}

// unitInfo is the resolved direction and assumption of a unit.
type unitInfo struct {
	better     Direction
	assumption string
}

func (g *gater) compare(b, n *side) error {
	keys := make([]benchproc.Key, 0, len(g.ids))
	for k := range g.ids {
		keys = append(keys, k)
	}
	benchproc.SortKeys(keys)
	units := map[string]unitInfo{}
	for _, k := range keys {
		id := g.ids[k]
		bv, nv := b.samples[k], n.samples[k]
		switch {
		case bv == nil:
			g.report.Missing = append(g.report.Missing, Missing{id.pkg, id.name, id.unit, n.label})
			continue
		case nv == nil:
			g.report.Missing = append(g.report.Missing, Missing{id.pkg, id.name, id.unit, b.label})
			continue
		}
		ui, ok := units[id.unit]
		if !ok {
			var err error
			if ui, err = g.resolveUnit(id.unit, b, n); err != nil {
				return err
			}
			units[id.unit] = ui
		}
		c, err := g.judge(id, ui, bv, nv)
		if err != nil {
			return fmt.Errorf("%s %s (baseline %s, candidate %s): %w", id.name, id.unit, b.name, n.name, err)
		}
		g.report.Comparisons = append(g.report.Comparisons, c)
	}
	return nil
}

// resolveUnit decides a unit's direction and assumption; see the package
// documentation for the order of precedence.
func (g *gater) resolveUnit(unit string, b, n *side) (unitInfo, error) {
	ui := unitInfo{assumption: "nothing"}
	for i := range g.rules {
		if r := &g.rules[i]; r.Better != Unknown && r.Unit == unit {
			ui.better = r.Better
		}
	}
	var meta [2]Direction
	for i, s := range []*side{b, n} {
		md := s.units.Get(unit, "better")
		if md == nil {
			continue
		}
		d, err := ParseDirection(md.Value)
		if err != nil {
			file, line := md.Pos()
			return ui, fmt.Errorf("%s:%d: unit %s: %w", file, line, md.OrigUnit, err)
		}
		meta[i] = d
	}
	if ui.better == Unknown {
		switch {
		case meta[0] != Unknown && meta[1] != Unknown && meta[0] != meta[1]:
			return ui, fmt.Errorf("unit %s: baseline %s says better=%s but candidate %s says better=%s (settle it with a better= rule)",
				unit, b.name, meta[0], n.name, meta[1])
		case meta[1] != Unknown:
			ui.better = meta[1]
		case meta[0] != Unknown:
			ui.better = meta[0]
		default:
			if d, ok := g.known[unit]; ok && d != Unknown {
				ui.better = d
			} else {
				ui.better = LowerIsBetter
				g.warnf("unit %s has no better= metadata and no known direction; assuming lower is better", unit)
			}
		}
	}
	var assume [2]string
	for i, s := range []*side{b, n} {
		md := s.units.Get(unit, "assume")
		if md == nil {
			continue
		}
		switch md.Value {
		case "nothing", "exact", "normal":
			assume[i] = md.Value
		default:
			file, line := md.Pos()
			return ui, fmt.Errorf("%s:%d: unit %s: assume=%q: want nothing, exact or normal", file, line, md.OrigUnit, md.Value)
		}
	}
	switch {
	case assume[1] != "":
		ui.assumption = assume[1]
		if assume[0] != "" && assume[0] != assume[1] {
			g.warnf("unit %s: baseline says assume=%s, candidate says assume=%s; using the candidate's", unit, assume[0], assume[1])
		}
	case assume[0] != "":
		ui.assumption = assume[0]
	}
	return ui, nil
}

func assumption(name string) benchmath.Assumption {
	switch name {
	case "exact":
		return benchmath.AssumeExact
	case "normal":
		return benchmath.AssumeNormal
	}
	return benchmath.AssumeNothing
}

// uTestNeed returns the smallest n for which two samples of n values can
// reach p < alpha in a two-sided Mann-Whitney U test: the most extreme
// outcome has p = 2/C(2n, n).
func uTestNeed(alpha float64) int {
	binom := 2.0 // C(2, 1)
	for n := 1; n < 100; n++ {
		if 2/binom < alpha {
			return n
		}
		// C(2n+2, n+1) = C(2n, n) * (2n+1)(2n+2) / (n+1)^2
		binom *= float64((2*n+1)*(2*n+2)) / float64((n+1)*(n+1))
	}
	return 100
}

// benignWarning filters benchmath remarks that carry no information for
// the gate: identical samples are a result, not a problem.
func benignWarning(err error) bool {
	switch err.Error() {
	case "all samples are equal", "sample has zero variance":
		return true
	}
	return false
}

func (g *gater) threshold(name, unit string) *Rule {
	var best *Rule
	for i := range g.rules {
		r := &g.rules[i]
		if r.Threshold == nil || !r.matches(name, unit) {
			continue
		}
		if best == nil || r.specificity() >= best.specificity() {
			best = r
		}
	}
	return best
}

// guard runs f, a call into benchmath, and turns a panic into an error:
// go-moremath panics when its incomplete beta function does not converge,
// which the t-test of assume=normal reaches for samples whose variance
// underflows or overflows.
func guard(what string, f func()) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %s failed on these samples: %v", ErrBadInput, what, r)
		}
	}()
	f()
	return nil
}

func (g *gater) judge(id ident, ui unitInfo, bv, nv []float64) (Comparison, error) {
	a := assumption(ui.assumption)
	th := &benchmath.Thresholds{CompareAlpha: g.opts.Alpha}
	bs := benchmath.NewSample(slices.Clone(bv), th)
	ns := benchmath.NewSample(slices.Clone(nv), th)
	var bsum, nsum benchmath.Summary
	if err := guard("the summary", func() {
		bsum = a.Summary(bs, g.opts.Confidence)
		nsum = a.Summary(ns, g.opts.Confidence)
	}); err != nil {
		return Comparison{}, err
	}
	if !isFinite(bsum.Center) || !isFinite(nsum.Center) {
		return Comparison{}, fmt.Errorf("%w: the %s is not finite (baseline %g, candidate %g)", ErrBadInput, a.SummaryLabel(), bsum.Center, nsum.Center)
	}
	rule := g.threshold(id.name, id.unit)
	c := Comparison{
		Pkg: id.pkg, Name: id.name, Unit: id.unit,
		Better: ui.better, Assumption: ui.assumption,
		Base:      Summary{bsum.Center, bsum.Lo, bsum.Hi, bsum.Confidence, len(bv)},
		New:       Summary{nsum.Center, nsum.Lo, nsum.Hi, nsum.Confidence, len(nv)},
		P:         math.NaN(),
		Alpha:     g.opts.Alpha,
		Threshold: *rule.Threshold, ThresholdSource: rule.Source,
	}
	switch delta := nsum.Center - bsum.Center; {
	case delta == 0:
		c.Change = 0
	case bsum.Center == 0:
		c.Change = math.Inf(int(math.Copysign(1, delta)))
	default:
		c.Change = delta / math.Abs(bsum.Center)
	}

	need := 1
	alphaBound := false
	if ui.assumption != "exact" {
		need = g.opts.MinSamples
		if ui.assumption == "nothing" {
			if u := uTestNeed(g.opts.Alpha); u > need {
				need, alphaBound = u, true
			}
		}
	}
	if len(bv) < need || len(nv) < need {
		c.Verdict = Refused
		g.report.Refused = append(g.report.Refused, Refusal{
			Pkg: id.pkg, Name: id.name, Unit: id.unit,
			NBase: len(bv), NNew: len(nv), Need: need,
			AlphaBound: alphaBound, Alpha: g.opts.Alpha,
		})
		return c, nil
	}

	var cmp benchmath.Comparison
	if err := guard("the significance test", func() { cmp = a.Compare(bs, ns) }); err != nil {
		return Comparison{}, err
	}
	if math.IsNaN(cmp.P) {
		return Comparison{}, fmt.Errorf("%w: the significance test gave no p-value", ErrBadInput)
	}
	// With ties, go-moremath's two-sided U test doubles a one-sided
	// probability that can exceed one half: a p-value is at most 1.
	c.P = min(cmp.P, 1)
	for _, ws := range [][]error{bs.Warnings, ns.Warnings, bsum.Warnings, nsum.Warnings, cmp.Warnings} {
		for _, w := range ws {
			if !benignWarning(w) && !slices.Contains(c.Warnings, w.Error()) {
				c.Warnings = append(c.Warnings, w.Error())
			}
		}
	}
	worse := (c.Change > 0) == (ui.better == LowerIsBetter)
	switch {
	case !(c.P < g.opts.Alpha) || c.Change == 0:
		c.Verdict = Unchanged
	case !worse:
		c.Verdict = Improved
	case c.Threshold.exceeded(bsum.Center, nsum.Center):
		c.Verdict = Regressed
	default:
		c.Verdict = Tolerated
	}
	return c, nil
}

func isFinite(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }
