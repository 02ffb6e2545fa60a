package plots

import (
	"image/color"
	"math"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// barItem is one vertical bar: centred at x, w wide, from the bottom of the
// value axis up to y, with an optional label above it.
type barItem struct {
	x, w, y float64
	fill    color.Color
	edge    color.Color // outline; nil for none
	label   string
	inside  bool // the label inside the bar's top, in white, rather than above it
}

// bars is a plot.Plotter of vertical bars that start at the value axis'
// minimum rather than at 0, so they work on a log axis as on a linear one
// (gonum's BarChart starts at 0, which a log axis cannot show).
type bars struct {
	items []barItem
	text  draw.TextStyle
}

func newBars() *bars {
	return &bars{text: plot.New().Legend.TextStyle}
}

func (b *bars) add(it barItem) { b.items = append(b.items, it) }

// Plot implements plot.Plotter.
func (b *bars) Plot(c draw.Canvas, p *plot.Plot) {
	trX, trY := p.Transforms(&c)
	txt := b.text
	txt.XAlign, txt.YAlign = draw.XCenter, draw.YBottom
	txt.Font.Size = vg.Points(8)
	for _, it := range b.items {
		if it.y <= p.Y.Min || math.IsNaN(it.y) {
			continue
		}
		x0, x1 := trX(it.x-it.w/2), trX(it.x+it.w/2)
		y0, y1 := trY(p.Y.Min), trY(min(it.y, p.Y.Max))
		box := []vg.Point{{X: x0, Y: y0}, {X: x1, Y: y0}, {X: x1, Y: y1}, {X: x0, Y: y1}}
		if pts := c.ClipPolygonXY(box); len(pts) > 0 {
			c.FillPolygon(it.fill, pts)
		}
		if it.edge != nil {
			ls := draw.LineStyle{Color: it.edge, Width: vg.Points(1)}
			c.StrokeLines(ls, c.ClipLinesXY(append(box, box[0]))...)
		}
		switch {
		case it.label == "":
		case it.inside:
			in := txt
			in.YAlign, in.Color = draw.YTop, color.White
			c.FillText(in, vg.Point{X: (x0 + x1) / 2, Y: y1 - vg.Points(3)}, it.label)
		default:
			c.FillText(txt, vg.Point{X: (x0 + x1) / 2, Y: y1 + vg.Points(2)}, it.label)
		}
	}
}

// DataRange implements plot.DataRanger.
func (b *bars) DataRange() (xmin, xmax, ymin, ymax float64) {
	xmin, xmax, ymin, ymax = math.Inf(1), math.Inf(-1), math.Inf(1), math.Inf(-1)
	for _, it := range b.items {
		xmin, xmax = min(xmin, it.x-it.w/2), max(xmax, it.x+it.w/2)
		if it.y > 0 {
			ymin, ymax = min(ymin, it.y), max(ymax, it.y)
		}
	}
	if math.IsInf(ymin, 1) {
		ymin, ymax = 0, 1
	}
	return xmin, xmax, ymin, ymax
}

// hline is a horizontal reference line across the plot at y, dashed.
type hline struct {
	y   float64
	col color.Color
}

// Plot implements plot.Plotter.
func (h hline) Plot(c draw.Canvas, p *plot.Plot) {
	_, trY := p.Transforms(&c)
	y := trY(h.y)
	ls := draw.LineStyle{Color: h.col, Width: vg.Points(1.5), Dashes: []vg.Length{vg.Points(6), vg.Points(3)}}
	c.StrokeLines(ls, c.ClipLinesXY([]vg.Point{{X: c.Min.X, Y: y}, {X: c.Max.X, Y: y}})...)
}

// Thumbnail implements plot.Thumbnailer, for the legend.
func (h hline) Thumbnail(c *draw.Canvas) {
	y := (c.Min.Y + c.Max.Y) / 2
	ls := draw.LineStyle{Color: h.col, Width: vg.Points(1.5), Dashes: []vg.Length{vg.Points(6), vg.Points(3)}}
	c.StrokeLine2(ls, c.Min.X, y, c.Max.X, y)
}
