package gate

import (
	"fmt"
	"io"
	"slices"

	"golang.org/x/perf/benchunit"
)

// KnownUnits returns the built-in directions: the units of the testing
// package and the custom metrics of this project (ProjectUnits). Units are
// tidied, as benchfmt reports them (ns/op is sec/op, MB/s is B/s, ns/hop is
// sec/hop). It returns a new map on every call.
func KnownUnits() map[string]Direction {
	units := map[string]Direction{
		"sec/op":    LowerIsBetter,
		"B/op":      LowerIsBetter,
		"allocs/op": LowerIsBetter,
		"B/s":       HigherIsBetter,
	}
	for u, d := range ProjectUnits() {
		_, tidy := benchunit.Tidy(1, u)
		units[tidy] = d
	}
	return units
}

// ProjectUnits returns the directions of this project's custom metrics,
// keyed by the unit as the benchmarks report it (ns/hop, not its tidied
// sec/hop). Benchmark binaries print them as unit metadata (see
// WriteUnitMetadataAssume); KnownUnits includes them, tidied. It returns
// a new map on every call.
func ProjectUnits() map[string]Direction {
	return map[string]Direction{
		"msgs/s":     HigherIsBetter,
		"eff":        HigherIsBetter,
		"p50-ms":     LowerIsBetter,
		"p90-ms":     LowerIsBetter,
		"p99-ms":     LowerIsBetter,
		"startup-ms": LowerIsBetter,
		"imbalance":  LowerIsBetter,
		"ns/hop":     LowerIsBetter,
		"x-raw":      LowerIsBetter,
	}
}

// WriteUnitMetadata writes one benchfmt unit metadata line per unit,
// sorted by unit, such as "Unit msgs/s better=higher". Benchmark scripts
// can prepend these lines to their output so that every tool reading the
// file (this gate, benchstat) agrees on the directions. Units with an
// Unknown direction are skipped.
func WriteUnitMetadata(w io.Writer, units map[string]Direction) error {
	return writeUnitMetadata(w, units, "")
}

// WriteUnitMetadataAssume is WriteUnitMetadata with the benchmath
// assumption on every line as well, such as
// "Unit msgs/s better=higher assume=nothing". assume is "nothing", "exact"
// or "normal".
func WriteUnitMetadataAssume(w io.Writer, units map[string]Direction, assume string) error {
	switch assume {
	case "nothing", "exact", "normal":
	default:
		return fmt.Errorf("unit metadata: assume=%q: want nothing, exact or normal", assume)
	}
	return writeUnitMetadata(w, units, "assume="+assume)
}

// writeUnitMetadata writes the lines of WriteUnitMetadata, each followed by
// " "+extra when extra is not empty. benchfmt.Writer writes one key per
// line, so the lines are formatted here, the way it formats them.
func writeUnitMetadata(w io.Writer, units map[string]Direction, extra string) error {
	names := make([]string, 0, len(units))
	for u := range units {
		names = append(names, u)
	}
	slices.Sort(names)
	for _, u := range names {
		d := units[u]
		if d == Unknown {
			continue
		}
		line := "Unit " + u + " better=" + d.String()
		if extra != "" {
			line += " " + extra
		}
		if _, err := io.WriteString(w, line+"\n"); err != nil {
			return fmt.Errorf("writing unit metadata for %s: %w", u, err)
		}
	}
	return nil
}
