package fleet

import (
	"fmt"
	"math"
	"strings"
)

// Share is one worker's part of its stage's messages over some interval.
type Share struct {
	WorkerID
	Handled uint64
	// Share is Handled over the stage's total; NaN when the stage handled none.
	Share float64
}

// Shares computes each worker's share of its stage's messages from
// per-worker handled counts (see Handled), for the workers in ids.
func Shares(ids []WorkerID, handled map[string]uint64) []Share {
	total := map[int]uint64{}
	for _, id := range ids {
		total[id.Stage] += handled[id.Name]
	}
	out := make([]Share, 0, len(ids))
	for _, id := range ids {
		s := Share{WorkerID: id, Handled: handled[id.Name], Share: math.NaN()}
		if t := total[id.Stage]; t > 0 {
			s.Share = float64(s.Handled) / float64(t)
		}
		out = append(out, s)
	}
	return out
}

// Imbalance is, for the workers of one stage, the largest relative
// deviation of a worker's share from the even share 1/n: 0 for a perfect
// balance, 0.15 when some worker is 15% off. NaN for no workers or no
// messages.
func Imbalance(shares []Share, stage int) float64 {
	var n int
	for _, s := range shares {
		if s.Stage == stage {
			n++
		}
	}
	if n == 0 {
		return math.NaN()
	}
	even := 1 / float64(n)
	worst := 0.0
	for _, s := range shares {
		if s.Stage != stage {
			continue
		}
		if math.IsNaN(s.Share) {
			return math.NaN()
		}
		worst = math.Max(worst, math.Abs(s.Share-even)/even)
	}
	return worst
}

// MetricName is a benchstat-friendly unit for a worker's share:
// "s2-w1-share".
func (s Share) MetricName() string {
	return fmt.Sprintf("s%d-w%d-share", s.Stage+1, s.Index+1)
}

// String is a log line: "S2 p4-S2-w1 handled 76 (25.3%)".
func (s Share) String() string {
	return fmt.Sprintf("%s handled %d (%.1f%%)", s.Name, s.Handled, 100*s.Share)
}

// FormatShares is one line per stage with several workers, for logs.
func FormatShares(shares []Share) string {
	var b strings.Builder
	byStage := map[int][]string{}
	var order []int
	for _, s := range shares {
		if _, ok := byStage[s.Stage]; !ok {
			order = append(order, s.Stage)
		}
		byStage[s.Stage] = append(byStage[s.Stage], s.String())
	}
	for _, st := range order {
		if len(byStage[st]) < 2 {
			continue
		}
		fmt.Fprintf(&b, "S%d: %s; imbalance %.3f\n", st+1, strings.Join(byStage[st], ", "), Imbalance(shares, st))
	}
	return b.String()
}
