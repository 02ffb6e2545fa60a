package gate

import (
	"fmt"
	"io"
	"slices"

	"golang.org/x/perf/benchunit"
)

// KnownUnits returns the directions the gate knows without being told:
// those of the units the testing package reports (ns/op, B/op, allocs/op,
// MB/s), tidied as benchfmt reports them (sec/op, B/op, allocs/op, B/s).
// A project's own units are not among them: declare them in the files as
// unit metadata (see WriteUnitMetadata), or pass them as Options.Units. It
// returns a new map on every call.
func KnownUnits() map[string]Direction {
	return map[string]Direction{
		"sec/op":    LowerIsBetter,
		"B/op":      LowerIsBetter,
		"allocs/op": LowerIsBetter,
		"B/s":       HigherIsBetter,
	}
}

// knownUnits returns KnownUnits with the caller's units added (they win),
// tidied as benchfmt tidies the units of results. Unknown entries are
// skipped.
func knownUnits(caller map[string]Direction) map[string]Direction {
	units := KnownUnits()
	for u, d := range caller {
		if d == Unknown {
			continue
		}
		_, tidy := benchunit.Tidy(1, u)
		units[tidy] = d
	}
	return units
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
