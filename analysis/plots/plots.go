// Package plots draws an analysis.Report with gonum.org/v1/plot, as PNG and
// SVG, and bundles the tables and figures into one HTML report:
//
//   - latency: end-to-end latency by percentile, one line per run, the x axis
//     as in HdrHistogram's percentile plots (1/(1-q), log scale) up to 99.9%;
//   - stages: mean wait and service time per message at each stage, stacked
//     into one bar per run, with the time in transit (messaging) on top;
//   - throughput: measured steady-state throughput per run (an allocation
//     sweep: one trace per allocation, in the order given) with the
//     theoretical bound drawn as a line;
//   - timeline-<run>: the first messages of a run through the stages, one
//     row per message, showing how messages overlap (pipelining).
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

// Charts returns every chart of rep: latency, stages, throughput, and a
// timeline per run.
func Charts(rep *analysis.Report, opts Options) ([]*Chart, error) {
	opts = opts.withDefaults()
	if len(rep.Runs) == 0 {
		return nil, fmt.Errorf("plots: no runs")
	}
	var out []*Chart
	for _, mk := range []func(*analysis.Report) (*Chart, error){Latency, Stages, Throughput} {
		ch, err := mk(rep)
		if err != nil {
			return nil, err
		}
		out = append(out, ch)
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
		ch.addLegend(r.Label, l)
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

// Throughput plots each run's steady-state throughput with its bound, runs in
// order along the x axis: for an allocation sweep, one run per allocation.
func Throughput(rep *analysis.Report) (*Chart, error) {
	// An allocation sweep (several runs of one variant) is labelled by
	// allocation and its points are joined by lines; other configurations
	// stand alone.
	sweep := sameVariant(rep)
	title := "Throughput by configuration"
	if sweep {
		title = "Throughput against allocation"
	}
	ch := newChart("throughput", title,
		"Measured steady-state throughput (completions between the first and last tenth of each run) against each configuration's theoretical bound, labelled with efficiency = measured / bound.")
	p := ch.Plot
	p.Y.Label.Text = "throughput (msgs/s)"
	p.Y.Min = 0
	n := len(rep.Runs)
	labels := make([]string, n)
	var measured, bound plotter.XYs
	var effs []string
	var effAt plotter.XYs
	for i, r := range rep.Runs {
		labels[i] = r.Label
		if sweep && len(r.Allocation) > 0 {
			labels[i] = r.AllocationString()
		}
		measured = append(measured, plotter.XY{X: float64(i), Y: r.Throughput})
		if r.Bound > 0 {
			bound = append(bound, plotter.XY{X: float64(i), Y: r.Bound})
			effs = append(effs, "eff "+strconv.FormatFloat(r.Efficiency, 'f', 2, 64))
			effAt = append(effAt, plotter.XY{X: float64(i), Y: r.Throughput})
		}
	}
	if sweep {
		p.X.Label.Text = "workers per stage (" + rep.Runs[0].Variant + ")"
	}
	if err := ch.addPoints("measured", measured, sweep, pointStyle{
		color: palette(0), glyph: draw.CircleGlyph{}, radius: vg.Points(4),
	}); err != nil {
		return nil, fmt.Errorf("plots: throughput: %w", err)
	}
	if len(bound) > 0 {
		if err := ch.addPoints("bound", bound, sweep, pointStyle{
			color: palette(2), glyph: draw.BoxGlyph{}, radius: vg.Points(3),
			dashes: []vg.Length{vg.Points(6), vg.Points(3)},
		}); err != nil {
			return nil, fmt.Errorf("plots: throughput bound: %w", err)
		}
	}
	if len(effAt) > 0 {
		lb, err := plotter.NewLabels(plotter.XYLabels{XYs: effAt, Labels: effs})
		if err != nil {
			return nil, fmt.Errorf("plots: throughput labels: %w", err)
		}
		for i := range lb.TextStyle {
			lb.TextStyle[i].XAlign = draw.XCenter
		}
		lb.Offset = vg.Point{Y: vg.Points(8)}
		p.Add(lb)
	}
	nominalX(p, labels)
	p.X.Min, p.X.Max = -0.5, float64(n)-0.5
	top := 0.0
	for i := range measured {
		top = max(top, measured[i].Y)
	}
	for i := range bound {
		top = max(top, bound[i].Y)
	}
	p.Y.Max = top * 1.15
	return ch, nil
}

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
