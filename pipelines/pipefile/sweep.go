package pipefile

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/natspipe/natspipe/pipelines"
	"github.com/natspipe/natspipe/pipelines/p4"
	"github.com/natspipe/natspipe/pipelines/plan"
	"github.com/natspipe/natspipe/pipelines/transports"
	"github.com/natspipe/natspipe/pipelines/variants"
	"github.com/natspipe/natspipe/pipelines/worker"
)

// SweepSection is a file's sweep section as written: the configurations
// natspipe sweep runs. Every list is optional; an axis not given is the
// file's deployment (or load) alone.
//
//	sweep:
//	  variants: [p3, p4]          # p0 .. p4
//	  transports: [core, js]      # for the variants with a broker
//	  modes: [sync, async]        # P3/P4 worker modes
//	  allocs: [[1,1,1,1], [1,4,1,1]]  # P4 allocations, or
//	  workers: 7                  # every allocation of 7 P4 workers
//	  loads: [closed, 0.8, 80/s]  # closed loop, a fraction of the bound, msgs/s
//	  count: 3                    # runs of each configuration
type SweepSection struct {
	Variants   []string `yaml:"variants,omitempty"`
	Transports []string `yaml:"transports,omitempty"`
	Modes      []string `yaml:"modes,omitempty"`
	Allocs     [][]int  `yaml:"allocs,omitempty"`
	Workers    *int     `yaml:"workers,omitempty"`
	Loads      []string `yaml:"loads,omitempty"`
	Count      *int     `yaml:"count,omitempty"`
}

// Sweep is a checked sweep section: each axis as a list, empty when not
// given.
type Sweep struct {
	Variants   []string
	Transports []string
	Modes      []worker.Mode
	// Allocs are P4 allocations, each checked against the stage count.
	Allocs []p4.Alloc
	// Workers > 0 stands for every allocation of that many P4 workers
	// (plan.Allocations); it is never given with Allocs.
	Workers int
	Loads   []SweepLoad
	Count   int // 0: not given
}

// MaxSweepCount bounds a sweep's runs of each configuration.
const MaxSweepCount = 100

// SweepLoad is one load of a sweep: closed loop (the zero value), an
// open-loop Fraction of the bound, or an open-loop Rate in msgs/s.
type SweepLoad struct {
	Fraction float64
	Rate     float64
}

// Closed reports whether l is closed loop.
func (l SweepLoad) Closed() bool { return l.Fraction == 0 && l.Rate == 0 }

// Key is l as a benchmark key: "" for closed loop, "load=0.8", "rate=80".
func (l SweepLoad) Key() string {
	switch {
	case l.Fraction > 0:
		return "load=" + strconv.FormatFloat(l.Fraction, 'g', -1, 64)
	case l.Rate > 0:
		return "rate=" + strconv.FormatFloat(l.Rate, 'g', -1, 64)
	}
	return ""
}

// String is l as written: closed, 0.8 or 80/s.
func (l SweepLoad) String() string {
	switch {
	case l.Fraction > 0:
		return strconv.FormatFloat(l.Fraction, 'g', -1, 64)
	case l.Rate > 0:
		return strconv.FormatFloat(l.Rate, 'g', -1, 64) + "/s"
	}
	return "closed"
}

// ParseSweepLoad reads a load as a sweep section or natspipe sweep -loads
// writes it: "closed", a fraction of the bound (0.8) or a rate in msgs/s
// (80/s).
func ParseSweepLoad(s string) (SweepLoad, error) {
	s = strings.TrimSpace(s)
	if s == "closed" {
		return SweepLoad{}, nil
	}
	num, rate := strings.CutSuffix(s, "/s")
	v, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
	switch {
	case err != nil:
		return SweepLoad{}, fmt.Errorf("%q: want closed, a fraction of the bound (0.8) or a rate in msgs/s (80/s)", s)
	case rate && (!(v > 0) || v > pipelines.MaxRate):
		return SweepLoad{}, fmt.Errorf("%q: want a rate > 0, at most %g msgs/s", s, pipelines.MaxRate)
	case rate:
		return SweepLoad{Rate: v}, nil
	case !(v > 0) || v > pipelines.MaxLoad:
		return SweepLoad{}, fmt.Errorf("%q: want a fraction of the bound > 0, at most %g (or closed, or a rate such as 80/s)", s, pipelines.MaxLoad)
	}
	return SweepLoad{Fraction: v}, nil
}

// CheckSweepVariant checks a sweep's variant name.
func CheckSweepVariant(name string) error {
	if _, err := variants.Lookup(name); err != nil {
		return fmt.Errorf("%q: want %s", name, strings.Join(variants.Names(), ", "))
	}
	return nil
}

// CheckSweepTransport checks a sweep's transport name.
func CheckSweepTransport(name string) error {
	if _, err := transports.Lookup(name); err != nil {
		return fmt.Errorf("%q: want %s", name, strings.Join(transports.Names(), ", "))
	}
	return nil
}

// CheckSweepWorkers checks "every allocation of n workers over stages".
func CheckSweepWorkers(n, stages int) error {
	if n < stages {
		return fmt.Errorf("%d: want at least one worker per stage (%d)", n, stages)
	}
	if c := plan.Count(n, stages); c > plan.MaxAllocations {
		return fmt.Errorf("%d: %.0f allocations over %d stages: at most %d", n, c, stages, plan.MaxAllocations)
	}
	if n > p4.MaxStageWorkers*stages {
		return fmt.Errorf("%d: at most %d a stage", n, p4.MaxStageWorkers)
	}
	return nil
}

// sweep checks f's sweep section into p.Sweep.
func (f File) sweep(p *Pipeline) *Error {
	s := f.Sweep
	if s == nil {
		return nil
	}
	out := &Sweep{}
	for i, v := range s.Variants {
		if err := CheckSweepVariant(v); err != nil {
			return fieldErr(fmt.Sprintf("sweep.variants[%d]", i), "%v", err)
		}
		out.Variants = append(out.Variants, v)
	}
	for i, t := range s.Transports {
		if err := CheckSweepTransport(t); err != nil {
			return fieldErr(fmt.Sprintf("sweep.transports[%d]", i), "%v", err)
		}
		out.Transports = append(out.Transports, t)
	}
	for i, m := range s.Modes {
		mode, err := worker.ParseMode(m)
		if err != nil {
			return fieldErr(fmt.Sprintf("sweep.modes[%d]", i), "%q: want sync or async", m)
		}
		out.Modes = append(out.Modes, mode)
	}
	if s.Allocs != nil && s.Workers != nil {
		return fieldErr("sweep.workers", "given with sweep.allocs: give one")
	}
	for i, a := range s.Allocs {
		field := fmt.Sprintf("sweep.allocs[%d]", i)
		if len(a) != len(f.Stages) {
			return fieldErr(field, "%d counts for %d stages: want one per stage", len(a), len(f.Stages))
		}
		for j, w := range a {
			if w < 1 || w > p4.MaxStageWorkers {
				return fieldErr(fmt.Sprintf("%s[%d]", field, j), "%d: want 1 to %d workers", w, p4.MaxStageWorkers)
			}
		}
		out.Allocs = append(out.Allocs, p4.Alloc(a))
	}
	if s.Workers != nil {
		if err := CheckSweepWorkers(*s.Workers, len(f.Stages)); err != nil {
			return fieldErr("sweep.workers", "%v", err)
		}
		out.Workers = *s.Workers
	}
	for i, l := range s.Loads {
		sl, err := ParseSweepLoad(l)
		if err != nil {
			return fieldErr(fmt.Sprintf("sweep.loads[%d]", i), "%v", err)
		}
		out.Loads = append(out.Loads, sl)
	}
	if s.Count != nil {
		if *s.Count < 1 || *s.Count > MaxSweepCount {
			return fieldErr("sweep.count", "%d: want 1 to %d runs of each configuration", *s.Count, MaxSweepCount)
		}
		out.Count = *s.Count
	}
	p.Sweep = out
	return nil
}
