package gate

import (
	"fmt"
	"io"
	"slices"

	"golang.org/x/perf/benchfmt"
	"golang.org/x/perf/benchunit"
)

// KnownUnits returns the built-in directions: the units of the testing
// package and the custom metrics of this project. Units are tidied, as
// benchfmt reports them (ns/op is sec/op, MB/s is B/s). It returns a new
// map on every call.
func KnownUnits() map[string]Direction {
	return map[string]Direction{
		"sec/op":    LowerIsBetter,
		"B/op":      LowerIsBetter,
		"allocs/op": LowerIsBetter,
		"B/s":       HigherIsBetter,
		"msgs/s":    HigherIsBetter,
		"eff":       HigherIsBetter,
		"p50-ms":    LowerIsBetter,
		"p90-ms":    LowerIsBetter,
		"p99-ms":    LowerIsBetter,
	}
}

// WriteUnitMetadata writes one benchfmt unit metadata line per unit,
// sorted by unit, such as "Unit msgs/s better=higher". Benchmark scripts
// can prepend these lines to their output so that every tool reading the
// file (this gate, benchstat) agrees on the directions. Units with an
// Unknown direction are skipped.
func WriteUnitMetadata(w io.Writer, units map[string]Direction) error {
	names := make([]string, 0, len(units))
	for u := range units {
		names = append(names, u)
	}
	slices.Sort(names)
	bw := benchfmt.NewWriter(w)
	for _, u := range names {
		d := units[u]
		if d == Unknown {
			continue
		}
		_, tidy := benchunit.Tidy(1, u)
		md := &benchfmt.UnitMetadata{
			UnitMetadataKey: benchfmt.UnitMetadataKey{Unit: tidy, Key: "better"},
			OrigUnit:        u,
			Value:           d.String(),
		}
		if err := bw.Write(md); err != nil {
			return fmt.Errorf("writing unit metadata for %s: %w", u, err)
		}
	}
	return nil
}
