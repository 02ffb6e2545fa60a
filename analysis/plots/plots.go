// Package plots draws an analysis.Report with gonum.org/v1/plot, as PNG and
// SVG, and bundles a generated narrative, the figures (embedded) and the
// tables into one self-contained HTML report:
//
//   - efficiency: measured throughput over the bound per run, as bars
//     against a line at 1: what a reader compares across variants;
//   - throughput: measured steady-state throughput per run with its bound
//     beside it (an allocation sweep: one trace per allocation, in the order
//     given), on a log axis when the values span more than 10x;
//   - stages: mean wait and service time per message at each stage, stacked
//     into one bar per run, with the time in transit (messaging) on top;
//   - latency: end-to-end latency by percentile, one line per run, the x axis
//     as in HdrHistogram's percentile plots (1/(1-q), log scale) up to 99.9%,
//     each closed-loop run's window in the legend;
//   - latency-load: for open-loop runs, p50/p99/p99.9 at each run's offered
//     load (a fraction of its bound), where variants compare fairly;
//   - timeline-<run>: the first messages of a run through the stages, one
//     row per message, showing how messages overlap (pipelining).
//
// Tick labels carry no spurious decimals ("500", not "500.00").
package plots

import (
	"fmt"
	"image/color"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"github.com/natspipe/natspipe/analysis"
	"github.com/natspipe/natspipe/pipelines/trace"
)

// Options size the charts.
type Options struct {
	// Width and Height are each chart's size; 0 means 8 x 5 inches, which
	// is 768 x 480 pixels in PNG (96 dpi).
	Width, Height vg.Length
	// Timeline is how many messages each timeline shows; 0 means 20.
	Timeline int
}

func (o Options) withDefaults() Options {
	if o.Width <= 0 {
		o.Width = 8 * vg.Inch
	}
	if o.Height <= 0 {
		o.Height = 5 * vg.Inch
	}
	if o.Timeline <= 0 {
		o.Timeline = 20
	}
	return o
}

// Chart is a plot ready to save, with its legend drawn to its right.
type Chart struct {
	Name    string // file base name: Name.png, Name.svg
	Title   string
	Caption string
	Plot    *plot.Plot
	legend  plot.Legend
	entries int
}

func newChart(name, title, caption string) *Chart {
	p := plot.New()
	p.Title.Text = title
	p.Add(plotter.NewGrid())
	p.X.Tick.Marker = cleanTicks{plot.DefaultTicks{}}
	p.Y.Tick.Marker = cleanTicks{plot.DefaultTicks{}}
	l := plot.NewLegend()
	l.Top, l.Left = true, true
	return &Chart{Name: name, Title: title, Caption: caption, Plot: p, legend: l}
}

func (ch *Chart) addLegend(name string, thumbs ...plot.Thumbnailer) {
	ch.legend.Add(name, thumbs...)
	ch.entries++
}

// Draw draws the chart on c: the plot, and its legend in a column on the right.
func (ch *Chart) Draw(c draw.Canvas) {
	c = draw.Crop(c, vg.Points(4), -vg.Points(4), vg.Points(4), -vg.Points(6))
	if ch.entries == 0 {
		ch.Plot.Draw(c)
		return
	}
	r := ch.legend.Rectangle(c)
	lw := r.Max.X - r.Min.X + vg.Points(16)
	ch.Plot.Draw(draw.Crop(c, 0, -lw, 0, 0))
	top := ch.Plot.Title.TextStyle.Height(ch.Plot.Title.Text) + ch.Plot.Title.Padding + vg.Points(8)
	ch.legend.Draw(draw.Crop(c, c.Max.X-c.Min.X-lw+vg.Points(8), 0, 0, -top))
}

// Save writes the chart as dir/Name.png and dir/Name.svg, w x h each.
func (ch *Chart) Save(dir string, w, h vg.Length) error {
	for _, format := range []string{"png", "svg"} {
		path := filepath.Join(dir, ch.Name+"."+format)
		if err := ch.save(path, format, w, h); err != nil {
			return fmt.Errorf("plot %s: %w", path, err)
		}
	}
	return nil
}

func (ch *Chart) save(path, format string, w, h vg.Length) error {
	cw, err := draw.NewFormattedCanvas(w, h, format)
	if err != nil {
		return err
	}
	ch.Draw(draw.New(cw))
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := cw.WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// Charts returns every chart of rep: efficiency, throughput, stages,
// latency, latency at load (with open-loop runs), the transport comparison
// (with runs over several transports) and a timeline per run.
func Charts(rep *analysis.Report, opts Options) ([]*Chart, error) {
	opts = opts.withDefaults()
	if len(rep.Runs) == 0 {
		return nil, fmt.Errorf("plots: no runs")
	}
	var out []*Chart
	for _, mk := range []func(*analysis.Report) (*Chart, error){Efficiency, Throughput, Stages, Latency, LatencyAtLoad} {
		ch, err := mk(rep)
		if err != nil {
			return nil, err
		}
		if ch != nil {
			out = append(out, ch)
		}
	}
	if len(brokered(rep)) > 1 {
		chs, err := Transports(rep)
		if err != nil {
			return nil, err
		}
		out = append(out, chs...)
	}
	used := map[string]bool{}
	for i, r := range rep.Runs {
		ch, err := Timeline(r, opts.Timeline)
		if err != nil {
			return nil, err
		}
		if used[ch.Name] {
			ch.Name += "-" + strconv.Itoa(i+1)
		}
		used[ch.Name] = true
		out = append(out, ch)
	}
	return out, nil
}

// palette is a qualitative colour set (Tableau 10), one colour per run or stage.
func palette(i int) color.RGBA {
	cs := [...]color.RGBA{
		{0x4e, 0x79, 0xa7, 0xff}, {0xf2, 0x8e, 0x2b, 0xff}, {0xe1, 0x57, 0x59, 0xff}, {0x59, 0xa1, 0x4f, 0xff},
		{0xb0, 0x7a, 0xa1, 0xff}, {0x76, 0xb7, 0xb2, 0xff}, {0xed, 0xc9, 0x48, 0xff}, {0xff, 0x9d, 0xa7, 0xff},
		{0x9c, 0x75, 0x5f, 0xff}, {0xba, 0xb0, 0xac, 0xff},
	}
	return cs[((i%len(cs))+len(cs))%len(cs)]
}

// lighten blends c toward white by f (0..1).
func lighten(c color.RGBA, f float64) color.RGBA {
	mix := func(v uint8) uint8 { return uint8(float64(v) + (255-float64(v))*f) }
	return color.RGBA{mix(c.R), mix(c.G), mix(c.B), 0xff}
}

// grey is the colour of transit and reference lines.
func grey() color.RGBA { return color.RGBA{0x70, 0x70, 0x70, 0xff} }

// swatch is a legend thumbnail: a filled box, or a thin bar.
type swatch struct {
	col  color.Color
	thin bool
}

func (s swatch) Thumbnail(c *draw.Canvas) {
	r := c.Rectangle
	if s.thin {
		mid, h := (r.Min.Y+r.Max.Y)/2, (r.Max.Y-r.Min.Y)/6
		r.Min.Y, r.Max.Y = mid-h, mid+h
	}
	c.FillPolygon(s.col, []vg.Point{r.Min, {X: r.Max.X, Y: r.Min.Y}, r.Max, {X: r.Min.X, Y: r.Max.Y}})
}

// Latency plots end-to-end latency against percentile, one line per run.
func Latency(rep *analysis.Report) (*Chart, error) {
	ch := newChart("latency", "End-to-end latency by percentile",
		"End-to-end latency (from the intended send for open-loop runs) at each percentile; the x axis is 1/(1-q) on a log scale, so the tail gets room.")
	p := ch.Plot
	p.X.Label.Text = "percentile"
	p.Y.Label.Text = "latency (ms)"
	p.X.Scale = plot.LogScale{}
	p.X.Min, p.X.Max = 1, 1000
	p.Y.Min = 0
	ticks := plot.ConstantTicks{{Value: 1, Label: "0%"}, {Value: 2, Label: "50%"}, {Value: 10, Label: "90%"},
		{Value: 100, Label: "99%"}, {Value: 1000, Label: "99.9%"}}
	for _, v := range []float64{4, 5, 20, 50, 200, 500} {
		ticks = append(ticks, plot.Tick{Value: v})
	}
	p.X.Tick.Marker = ticks
	const steps = 150
	floor, sameFloor := rep.Runs[0].Floor, true
	closed := false
	for i, r := range rep.Runs {
		sameFloor = sameFloor && r.Floor == floor
		pts := make(plotter.XYs, 0, steps+1)
		for k := 0; k <= steps; k++ {
			x := math.Pow(10, 3*float64(k)/steps)
			pts = append(pts, plotter.XY{X: x, Y: r.LatencyAt(1 - 1/x)})
		}
		l, err := plotter.NewLine(pts)
		if err != nil {
			return nil, fmt.Errorf("plots: latency of %s: %w", r.Label, err)
		}
		l.Color, l.Width = palette(i), vg.Points(2)
		p.Add(l)
		ch.addLegend(r.Label+" ("+source(r)+")", l)
		closed = closed || r.OpenLoop == nil
	}
	if closed {
		p.Title.Text += "\nclosed loop: latency includes the queue behind each run's window"
		ch.Caption += " Closed-loop latency includes each message's queue behind its run's window (the window is in the legend): a larger window queues more messages at the bottleneck and reads slower without the pipeline being slower; latency at equal offered load needs open-loop runs."
	}
	if sameFloor && floor > 0 {
		l, err := plotter.NewLine(plotter.XYs{{X: 1, Y: floor}, {X: 1000, Y: floor}})
		if err != nil {
			return nil, fmt.Errorf("plots: latency floor: %w", err)
		}
		l.Color, l.Dashes, l.Width = grey(), []vg.Length{vg.Points(5), vg.Points(3)}, vg.Points(1)
		p.Add(l)
		ch.addLegend("floor (sum of stage times)", l)
	}
	return ch, nil
}

// source says how a run's source sent: "window 34" for a closed loop,
// "open, load 0.80" (of the bound) or "open 80 msgs/s" for an open loop.
func source(r *analysis.Run) string {
	switch {
	case r.OpenLoop != nil && load(r) > 0:
		return "open, load " + strconv.FormatFloat(load(r), 'f', 2, 64)
	case r.OpenLoop != nil:
		return "open " + rateLabel(r.Rate) + " msgs/s"
	case r.Window > 0:
		return "window " + strconv.Itoa(r.Window)
	}
	return "closed loop"
}

// Stages stacks each stage's mean wait and service time per message into one
// bar per run, with the mean time in transit on top.
func Stages(rep *analysis.Report) (*Chart, error) {
	ch := newChart("stages", "Where a message's time goes",
		"Mean time per message: at each stage the queue wait (light) and the service time (solid), stacked in stage order; transit is the time in messaging between stages.")
	p := ch.Plot
	p.Y.Label.Text = "mean time per message (ms)"
	p.Y.Min = 0
	n := len(rep.Runs)
	stages := 0
	labels := make([]string, n)
	for i, r := range rep.Runs {
		stages = max(stages, len(r.Stages))
		labels[i] = r.Label
	}
	width := vg.Points(math.Min(60, 360/float64(n)))
	var prev *plotter.BarChart
	layer := func(name string, col color.Color, value func(*analysis.Run) float64) error {
		vs := make(plotter.Values, n)
		for i, r := range rep.Runs {
			vs[i] = value(r)
		}
		bc, err := plotter.NewBarChart(vs, width)
		if err != nil {
			return fmt.Errorf("plots: stages: %s: %w", name, err)
		}
		bc.Color = col
		bc.LineStyle.Width = 0
		if prev != nil {
			bc.StackOn(prev)
		}
		prev = bc
		p.Add(bc)
		ch.addLegend(name, swatch{col: col})
		return nil
	}
	for s := 0; s < stages; s++ {
		name := "S" + strconv.Itoa(s+1)
		stage := func(r *analysis.Run) *analysis.Stage {
			if s < len(r.Stages) {
				return &r.Stages[s]
			}
			return nil
		}
		if err := layer(name+" wait", lighten(palette(s), 0.6), func(r *analysis.Run) float64 {
			if st := stage(r); st != nil {
				return st.Wait.Mean
			}
			return 0
		}); err != nil {
			return nil, err
		}
		if err := layer(name+" service", palette(s), func(r *analysis.Run) float64 {
			if st := stage(r); st != nil {
				return st.Service.Mean
			}
			return 0
		}); err != nil {
			return nil, err
		}
	}
	if err := layer("transit", grey(), func(r *analysis.Run) float64 { return r.Transit.Mean }); err != nil {
		return nil, err
	}
	nominalX(p, labels)
	top := 0.0
	for _, r := range rep.Runs {
		sum := r.Transit.Mean
		for _, st := range r.Stages {
			sum += st.Wait.Mean + st.Service.Mean
		}
		top = max(top, sum)
	}
	if top > 0 {
		p.Y.Max = top * 1.08
	}
	return ch, nil
}

// nominalX names the x axis' positions 0, 1, ... and slants the names when
// they would run into each other.
func nominalX(p *plot.Plot, names []string) {
	p.NominalX(names...)
	const room = 5 * vg.Inch // about what a default chart gives its x axis
	var widest vg.Length
	for _, n := range names {
		widest = max(widest, p.X.Tick.Label.Width(n))
	}
	if widest > 0.9*room/vg.Length(len(names)) {
		p.X.Tick.Label.Rotation = math.Pi / 8
		p.X.Tick.Label.XAlign = draw.XRight
		p.X.Tick.Label.YAlign = draw.YTop
	}
}

// Throughput draws each run's measured steady-state throughput as a bar in
// the run's colour with its theoretical bound as a light bar beside it,
// each labelled with its value, runs in order along the x axis (for an
// allocation sweep, one run per allocation). The value axis is logarithmic
// when the values span more than 10x (P2's bound next to P3's), so no run
// sits on the floor.
func Throughput(rep *analysis.Report) (*Chart, error) {
	sweep := sameVariant(rep)
	title := "Throughput by configuration"
	if sweep {
		title = "Throughput against allocation"
	}
	ch := newChart("throughput", title,
		"Measured steady-state throughput (completions between the first and last tenth of each run; solid, in the run's colour) with the configuration's theoretical bound beside it (light grey), each labelled in msgs/s.")
	p := ch.Plot
	n := len(rep.Runs)
	labels := make([]string, n)
	b := newBars()
	var vals []float64
	for i, r := range rep.Runs {
		labels[i] = r.Label
		if sweep && len(r.Allocation) > 0 {
			labels[i] = r.AllocationString()
		}
		x := float64(i)
		b.add(barItem{x: x - 0.18, w: 0.34, y: r.Throughput, fill: palette(i), label: rateLabel(r.Throughput)})
		vals = append(vals, r.Throughput)
		if r.Bound > 0 {
			b.add(barItem{x: x + 0.18, w: 0.34, y: r.Bound, fill: boundGrey(), edge: grey(), label: rateLabel(r.Bound)})
			vals = append(vals, r.Bound)
		}
	}
	p.Add(b)
	ch.addLegend("measured", swatch{col: palette(0)})
	ch.addLegend("bound (theory)", swatch{col: boundGrey()})
	if valueAxis(&p.Y, vals) {
		p.Y.Label.Text = "throughput (msgs/s, log scale)"
		ch.Caption += " The axis is logarithmic: the values span more than 10x."
	} else {
		p.Y.Label.Text = "throughput (msgs/s)"
	}
	if sweep {
		p.X.Label.Text = "workers per stage (" + rep.Runs[0].Variant + ")"
	}
	nominalX(p, labels)
	p.X.Min, p.X.Max = -0.5, float64(n)-0.5
	return ch, nil
}

// Efficiency draws each run's efficiency, measured throughput over its
// bound, as a bar in the run's colour labelled with its value, against a
// dashed line at 1 (the bound): the number the study compares across
// variants and allocations. A run without a bound has no bar.
func Efficiency(rep *analysis.Report) (*Chart, error) {
	ch := newChart("efficiency", "Efficiency: measured throughput over the bound",
		"Steady-state throughput over each configuration's theoretical bound; 1 (dashed) is the bound. Machine-independent for sleep work, so it is the number to compare across variants and allocations.")
	p := ch.Plot
	n := len(rep.Runs)
	labels := make([]string, n)
	b := newBars()
	top := 1.0
	var loads plotter.XYs
	for i, r := range rep.Runs {
		labels[i] = r.Label
		if r.Bound <= 0 {
			labels[i] += " (no bound)"
			continue
		}
		// Labels sit inside the bars that reach near the line at 1, so
		// the line does not cross them.
		b.add(barItem{x: float64(i), w: 0.6, y: r.Efficiency, fill: palette(i), label: strconv.FormatFloat(r.Efficiency, 'f', 2, 64), inside: r.Efficiency > 0.2})
		top = max(top, r.Efficiency)
		if r.OpenLoop != nil {
			loads = append(loads, plotter.XY{X: float64(i), Y: load(r)})
		}
	}
	p.Add(b, hline{y: 1, col: grey()})
	ch.addLegend("bound", hline{y: 1, col: grey()})
	if len(loads) > 0 {
		p.Add(marks{at: loads, half: 0.4, col: color.Black})
		ch.addLegend("offered load", hline{col: color.Black})
		ch.Caption += " An open-loop run's throughput follows its offered rate, so its efficiency is about its offered load (black dashes), not what the pipeline could do; efficiency past the load is a backlog drained within the run."
	}
	p.Y.Label.Text = "efficiency (measured / bound)"
	p.Y.Min, p.Y.Max = 0, top*1.15
	nominalX(p, labels)
	p.X.Min, p.X.Max = -0.5, float64(n)-0.5
	return ch, nil
}

// openLoop returns rep's open-loop runs.
func openLoop(rep *analysis.Report) []*analysis.Run {
	var out []*analysis.Run
	for _, r := range rep.Runs {
		if r.OpenLoop != nil {
			out = append(out, r)
		}
	}
	return out
}

// load is an open-loop run's offered load as a fraction of its bound; 0
// when it has no bound.
func load(r *analysis.Run) float64 {
	if r.Bound <= 0 {
		return 0
	}
	return r.Rate / r.Bound
}

// LatencyAtLoad compares the open-loop runs of rep: p50, p99 and p99.9
// latency (from the intended send) side by side per run, labelled with the
// offered load as a fraction of the run's bound, with its latency floor.
// At equal load, the variants' latencies compare fairly, which closed-loop
// latencies (each including its own window's queue) do not. It returns nil
// when rep has no open-loop run.
func LatencyAtLoad(rep *analysis.Report) (*Chart, error) {
	runs := openLoop(rep)
	if len(runs) == 0 {
		return nil, nil
	}
	same := true
	for _, r := range runs {
		same = same && load(r) > 0 && math.Abs(load(r)-load(runs[0])) <= 0.02*load(runs[0])
	}
	title := "Latency at offered load (open loop)"
	if same {
		title = "Latency at equal offered load: " + strconv.FormatFloat(100*load(runs[0]), 'f', 0, 64) + "% of each bound (open loop)"
	}
	ch := newChart("latency-load", title,
		"Open-loop runs: end-to-end latency from the intended send at p50, p99 and p99.9 (light to dark), each run at its offered load (a fraction of its own bound, under its name), with the latency floor (sum of stage times) as a dashed line. At equal load the variants compare fairly: no window queue is included.")
	p := ch.Plot
	labels := make([]string, len(runs))
	b := newBars()
	var vals []float64
	qs := []struct {
		name  string
		q     float64
		shade float64
	}{{"p50", 0.50, 0.6}, {"p99", 0.99, 0.25}, {"p99.9", 0.999, 0}}
	var floors plotter.XYs
	for i, r := range runs {
		labels[i] = r.Label
		if l := load(r); l > 0 {
			labels[i] += "\nload " + strconv.FormatFloat(l, 'f', 2, 64)
		} else {
			labels[i] += "\n" + rateLabel(r.Rate) + " msgs/s"
		}
		for k, q := range qs {
			v := r.LatencyAt(q.q)
			b.add(barItem{x: float64(i) - 0.27 + 0.27*float64(k), w: 0.25, y: v, fill: lighten(palette(i), q.shade), label: number(roundSig(v, 3))})
			vals = append(vals, v)
		}
		if r.Floor > 0 {
			floors = append(floors, plotter.XY{X: float64(i), Y: r.Floor})
			vals = append(vals, r.Floor)
		}
	}
	p.Add(b)
	for _, q := range qs {
		ch.addLegend(q.name, swatch{col: lighten(grey(), q.shade)})
	}
	if len(floors) > 0 {
		p.Add(marks{at: floors, half: 0.42, col: grey()})
		ch.addLegend("floor", hline{col: grey()})
	}
	if valueAxis(&p.Y, vals) {
		p.Y.Label.Text = "latency (ms, log scale)"
	} else {
		p.Y.Label.Text = "latency (ms)"
	}
	nominalX(p, labels)
	p.X.Min, p.X.Max = -0.5, float64(len(runs))-0.5
	return ch, nil
}

// marks draws a dashed segment at each point's y, from x-half to x+half:
// a run's latency floor or offered load across its bars.
type marks struct {
	at   plotter.XYs
	half float64
	col  color.Color
}

// Plot implements plot.Plotter.
func (f marks) Plot(c draw.Canvas, p *plot.Plot) {
	trX, trY := p.Transforms(&c)
	ls := draw.LineStyle{Color: f.col, Width: vg.Points(1.5), Dashes: []vg.Length{vg.Points(6), vg.Points(3)}}
	for _, pt := range f.at {
		y := trY(pt.Y)
		c.StrokeLines(ls, c.ClipLinesXY([]vg.Point{{X: trX(pt.X - f.half), Y: y}, {X: trX(pt.X + f.half), Y: y}})...)
	}
}

// roundSig rounds v to n significant figures.
func roundSig(v float64, n int) float64 {
	r, err := strconv.ParseFloat(strconv.FormatFloat(v, 'g', n, 64), 64)
	if err != nil {
		return v
	}
	return r
}

// rateLabel formats a rate for a bar's label: whole numbers from 100 up,
// else 3 significant figures.
func rateLabel(v float64) string {
	if v >= 100 {
		return strconv.FormatFloat(math.Round(v), 'f', 0, 64)
	}
	return number(roundSig(v, 3))
}

// boundGrey fills the bound's bars.
func boundGrey() color.RGBA { return color.RGBA{0xd9, 0xd9, 0xd9, 0xff} }

// brokered lists rep's transports, leaving out runs without one (P0).
func brokered(rep *analysis.Report) []string {
	var out []string
	for _, t := range rep.Transports() {
		if t != "-" {
			out = append(out, t)
		}
	}
	return out
}

// Transports compares transports: throughput efficiency and p99 latency by
// variant (x) and transport (one series each, side by side), for reports
// whose runs went over more than one transport. Runs without a transport
// (P0) and, for efficiency, runs without a bound are left out.
func Transports(rep *analysis.Report) ([]*Chart, error) {
	trs := brokered(rep)
	var variants []string
	for _, r := range rep.Runs {
		if r.Transport != "" && !slices.Contains(variants, r.Variant) {
			variants = append(variants, r.Variant)
		}
	}
	eff := newChart("transports-efficiency", "Throughput efficiency by transport",
		"Measured steady-state throughput over the configuration's bound, by variant and transport; 1 is the bound. Where a variant ran more than once over a transport, each run is a point.")
	eff.Plot.Y.Label.Text = "efficiency (measured / bound)"
	eff.Plot.Y.Min = 0
	p99 := newChart("transports-p99", "p99 latency by transport",
		"End-to-end p99 latency by variant and transport (closed-loop latency includes each variant's window queue), with the latency floor (sum of stage times) per variant.")
	p99.Plot.Y.Label.Text = "p99 latency (ms)"
	p99.Plot.Y.Min = 0
	width := 0.6 / float64(len(trs))
	topEff, topP99 := 1.0, 0.0
	for ti, tr := range trs {
		var pe, pl plotter.XYs
		for _, r := range rep.Runs {
			if r.TransportName() != tr {
				continue
			}
			x := float64(slices.Index(variants, r.Variant)) - 0.3 + width*(float64(ti)+0.5)
			if r.Bound > 0 {
				pe = append(pe, plotter.XY{X: x, Y: r.Efficiency})
				topEff = max(topEff, r.Efficiency)
			}
			pl = append(pl, plotter.XY{X: x, Y: r.LatencyAt(0.99)})
			topP99 = max(topP99, r.LatencyAt(0.99))
		}
		st := pointStyle{color: palette(ti), glyph: draw.CircleGlyph{}, radius: vg.Points(4)}
		if len(pe) > 0 {
			if err := eff.addPoints(tr, pe, false, st); err != nil {
				return nil, fmt.Errorf("plots: efficiency of %s: %w", tr, err)
			}
		}
		if err := p99.addPoints(tr, pl, false, st); err != nil {
			return nil, fmt.Errorf("plots: p99 of %s: %w", tr, err)
		}
	}
	var floors plotter.XYs
	for i, v := range variants {
		for _, r := range rep.Runs {
			if r.Variant == v && r.Floor > 0 {
				floors = append(floors, plotter.XY{X: float64(i), Y: r.Floor})
				break
			}
		}
	}
	if len(floors) > 0 {
		if err := p99.addPoints("floor", floors, false, pointStyle{color: grey(), glyph: draw.PlusGlyph{}, radius: vg.Points(5)}); err != nil {
			return nil, fmt.Errorf("plots: latency floor: %w", err)
		}
	}
	for _, ch := range []*Chart{eff, p99} {
		nominalX(ch.Plot, variants)
		ch.Plot.X.Min, ch.Plot.X.Max = -0.5, float64(len(variants))-0.5
		ch.Plot.X.Label.Text = "variant"
	}
	eff.Plot.Y.Max = topEff * 1.1
	p99.Plot.Y.Max = topP99 * 1.15
	return []*Chart{eff, p99}, nil
}

// pointStyle is how addPoints draws a series.
type pointStyle struct {
	color  color.Color
	glyph  draw.GlyphDrawer
	radius vg.Length
	dashes []vg.Length // of the joining line; nil for a solid line
}

// addPoints adds pts to the chart as glyphs and, when join is set, a line
// 2 points wide through them, with a legend entry name.
func (ch *Chart) addPoints(name string, pts plotter.XYs, join bool, st pointStyle) error {
	l, s, err := plotter.NewLinePoints(pts)
	if err != nil {
		return err
	}
	l.Color, l.Width = st.color, vg.Points(2)
	if st.dashes != nil {
		l.Dashes = st.dashes
	}
	s.Color, s.Shape, s.Radius = st.color, st.glyph, st.radius
	if join {
		ch.Plot.Add(l)
		ch.addLegend(name, l, s)
	} else {
		ch.addLegend(name, s)
	}
	ch.Plot.Add(s)
	return nil
}

func sameVariant(rep *analysis.Report) bool {
	for _, r := range rep.Runs[1:] {
		if r.Variant != rep.Runs[0].Variant {
			return false
		}
	}
	return len(rep.Runs) > 1
}

// Timeline draws the first n completed messages of r through the stages:
// one row per message, a thin grey line for its life from send to sink, a
// light bar for each queue wait and a solid one for each stage's work.
func Timeline(r *analysis.Run, n int) (*Chart, error) {
	tr := r.Trace()
	if tr == nil {
		return nil, fmt.Errorf("plots: timeline of %s: no trace", r.Label)
	}
	ch := newChart("timeline-"+trace.SafeName(r.Label), "First messages through the stages: "+r.Label,
		fmt.Sprintf("The first %d messages of %s: each row is a message, from its send (thin line) through each stage's queue wait (light) and work (solid) to the sink; overlapping rows are pipelining.", n, r.Label))
	p := ch.Plot
	p.X.Label.Text = "time since the first send (ms)"
	p.Y.Label.Text = "message (seq)"
	p.Y.Scale = plot.InvertedScale{Normalizer: plot.LinearScale{}}
	tl := &timeline{}
	var t0 int64 = math.MaxInt64
	var msgs []*trace.Message
	for i := range tr.Messages {
		m := &tr.Messages[i]
		if m.Completed() && len(msgs) < n {
			msgs = append(msgs, m)
		}
	}
	if len(msgs) == 0 {
		return nil, fmt.Errorf("plots: timeline of %s: no completed messages", r.Label)
	}
	for _, m := range msgs {
		t0 = min(t0, m.Sent, m.Intended)
	}
	at := func(ns int64) float64 { return float64(ns-t0) / 1e6 }
	var ticks plot.ConstantTicks
	every := max(1, len(msgs)/20)
	stages := 0
	for i, m := range msgs {
		y := float64(i)
		if i%every == 0 {
			ticks = append(ticks, plot.Tick{Value: y, Label: strconv.FormatUint(m.Seq, 10)})
		}
		tl.bars = append(tl.bars, bar{y: y, x0: at(m.Sent), x1: at(m.Received), col: grey(), half: 0.06})
		for s, st := range m.Stages {
			stages = max(stages, s+1)
			tl.bars = append(tl.bars,
				bar{y: y, x0: at(st.Arrived), x1: at(st.Started), col: lighten(palette(s), 0.6), half: 0.3},
				bar{y: y, x0: at(st.Started), x1: at(st.Finished), col: palette(s), half: 0.3})
		}
	}
	p.Y.Tick.Marker = ticks
	p.Add(tl)
	for s := 0; s < stages; s++ {
		name := "S" + strconv.Itoa(s+1)
		ch.addLegend(name+" work", swatch{col: palette(s)})
		ch.addLegend(name+" wait", swatch{col: lighten(palette(s), 0.6)})
	}
	ch.addLegend("in transit", swatch{col: grey(), thin: true})
	return ch, nil
}

type bar struct {
	y, x0, x1 float64
	half      float64 // half height, in rows
	col       color.Color
}

// timeline is a plot.Plotter of horizontal bars.
type timeline struct{ bars []bar }

// Plot implements plot.Plotter.
func (t *timeline) Plot(c draw.Canvas, p *plot.Plot) {
	trX, trY := p.Transforms(&c)
	for _, b := range t.bars {
		x0, x1 := trX(b.x0), trX(b.x1)
		if x1-x0 < vg.Points(1) {
			x1 = x0 + vg.Points(1) // keep the shortest work visible
		}
		y0, y1 := trY(b.y-b.half), trY(b.y+b.half)
		pts := c.ClipPolygonXY([]vg.Point{{X: x0, Y: y0}, {X: x1, Y: y0}, {X: x1, Y: y1}, {X: x0, Y: y1}})
		if len(pts) > 0 {
			c.FillPolygon(b.col, pts)
		}
	}
}

// DataRange implements plot.DataRanger.
func (t *timeline) DataRange() (xmin, xmax, ymin, ymax float64) {
	xmin, xmax = math.Inf(1), math.Inf(-1)
	ymin, ymax = -0.5, 0.5
	for _, b := range t.bars {
		xmin, xmax = min(xmin, b.x0), max(xmax, b.x1)
		ymax = max(ymax, b.y+0.5)
	}
	return min(xmin, 0), xmax, ymin, ymax
}
