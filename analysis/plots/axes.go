package plots

import (
	"math"
	"strconv"

	"gonum.org/v1/plot"
)

// number formats a tick value without spurious decimals: 500, 0.25, 1.5,
// 10000 (never "500.00" or "1e+04").
func number(v float64) string {
	if v == 0 {
		return "0"
	}
	// Round to 6 significant figures first, so 0.30000000000000004 reads 0.3.
	r, err := strconv.ParseFloat(strconv.FormatFloat(v, 'g', 6, 64), 64)
	if err != nil {
		r = v
	}
	return strconv.FormatFloat(r, 'f', -1, 64)
}

// cleanTicks relabels another ticker's labelled ticks with number.
type cleanTicks struct{ plot.Ticker }

// Ticks implements plot.Ticker.
func (t cleanTicks) Ticks(lo, hi float64) []plot.Tick {
	ts := t.Ticker.Ticks(lo, hi)
	for i := range ts {
		if ts[i].Label != "" {
			ts[i].Label = number(ts[i].Value)
		}
	}
	return ts
}

// logTicks marks a log axis: a labelled tick at each power of ten and, when
// the axis spans at most three decades, at 2 and 5 times it as well; an
// unlabelled tick at each other multiple.
type logTicks struct{}

// Ticks implements plot.Ticker.
func (logTicks) Ticks(lo, hi float64) []plot.Tick {
	if lo <= 0 || hi <= lo {
		return nil
	}
	dense := math.Log10(hi/lo) <= 3
	var ts []plot.Tick
	for d := math.Pow10(int(math.Floor(math.Log10(lo)))); d <= hi; d *= 10 {
		for m := 1; m < 10; m++ {
			v := d * float64(m)
			if v < lo*(1-1e-9) || v > hi*(1+1e-9) {
				continue
			}
			t := plot.Tick{Value: v}
			if m == 1 || (dense && (m == 2 || m == 5)) {
				t.Label = number(v)
			}
			ts = append(ts, t)
		}
	}
	return ts
}

// logSpan is how far apart values may be, largest over smallest, before a
// value axis goes logarithmic: past it the small values sit on the floor of
// a linear axis.
const logSpan = 10

// valueAxis sets ax up for vals (the positive ones count): a log axis when
// they span more than logSpan, from the power of ten below the smallest,
// else a linear one from 0; either with room above the largest for a label,
// and clean tick labels. It returns whether the axis is logarithmic.
func valueAxis(ax *plot.Axis, vals []float64) bool {
	lo, hi := math.Inf(1), 0.0
	for _, v := range vals {
		if v > 0 && !math.IsInf(v, 0) {
			lo, hi = min(lo, v), max(hi, v)
		}
	}
	if hi == 0 {
		ax.Min, ax.Max = 0, 1
		ax.Tick.Marker = cleanTicks{plot.DefaultTicks{}}
		return false
	}
	if hi/lo > logSpan {
		ax.Scale = plot.LogScale{}
		ax.Tick.Marker = logTicks{}
		ax.Min = math.Pow10(int(math.Floor(math.Log10(lo) - 0.05)))
		ax.Max = hi * 2.2 // a label's room, on a log axis
		return true
	}
	ax.Scale = plot.LinearScale{}
	ax.Tick.Marker = cleanTicks{plot.DefaultTicks{}}
	ax.Min, ax.Max = 0, hi*1.15
	return false
}
