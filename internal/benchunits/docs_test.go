package benchunits

import (
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/natspipe/natspipe/bench/gate"
	"github.com/natspipe/natspipe/pipelines/fleet"
)

var update = flag.Bool("update", false, "rewrite README.md's unit table from Docs")

// The README's unit table sits between these lines.
const (
	tableBegin = "<!-- units: generated from internal/benchunits (go test ./internal/benchunits -update) -->\n"
	tableEnd   = "<!-- end of units -->\n"
)

// TestREADMEUnitTable checks that README.md's unit table is MarkdownTable,
// so the README and the units cannot drift; -update rewrites it.
func TestREADMEUnitTable(t *testing.T) {
	path := filepath.Join("..", "..", "README.md")
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read the README: %v", err)
	}
	readme := string(raw)
	i, j := strings.Index(readme, tableBegin), strings.Index(readme, tableEnd)
	if i < 0 || j < i {
		t.Fatalf("%s: no unit table between %q and %q", path, strings.TrimSpace(tableBegin), strings.TrimSpace(tableEnd))
	}
	got, want := readme[i+len(tableBegin):j], MarkdownTable()
	if got == want {
		return
	}
	if *update {
		readme = readme[:i+len(tableBegin)] + want + readme[j:]
		if err := os.WriteFile(path, []byte(readme), 0o644); err != nil {
			t.Fatalf("update the README: %v", err)
		}
		return
	}
	t.Errorf("%s: the unit table differs from benchunits.MarkdownTable; run go test ./internal/benchunits -update\ngot:\n%s\nwant:\n%s", path, got, want)
}

// TestDocsCoverDirections checks that every unit with a direction is
// documented with that direction, and every documented custom unit has one.
func TestDocsCoverDirections(t *testing.T) {
	dirs := Directions()
	documented := map[string]string{}
	for _, d := range Docs() {
		if d.Meaning == "" || d.Better == "" {
			t.Errorf("%v: empty meaning or direction", d.Units)
		}
		for _, u := range d.Units {
			if _, dup := documented[u]; dup {
				t.Errorf("%s documented twice", u)
			}
			documented[u] = d.Better
		}
	}
	for u, dir := range dirs {
		if documented[u] != dir.String() {
			t.Errorf("%s: documented better=%q, Directions says %s", u, documented[u], dir)
		}
	}
	for u, better := range documented {
		if _, ok := dirs[u]; ok || u == Share {
			continue
		}
		if _, std := standardBetter[u]; !std {
			t.Errorf("%s is documented (better=%s) but is neither in Directions nor a standard unit", u, better)
		}
	}
	if got := gate.HigherIsBetter.String(); got != "higher" {
		t.Fatalf("gate's direction spelling changed: %q", got)
	}
}

// TestSharePattern checks that Share describes the names fleet gives the
// per-worker share metrics.
func TestSharePattern(t *testing.T) {
	re := regexp.MustCompile("^" + strings.NewReplacer("N", `\d+`, "K", `\d+`).Replace(Share) + "$")
	for _, s := range []fleet.Share{{WorkerID: fleet.WorkerID{Stage: 1, Index: 0}}, {WorkerID: fleet.WorkerID{Stage: 0, Index: 11}}} {
		if name := s.MetricName(); !re.MatchString(name) {
			t.Errorf("fleet metric %q does not match %s", name, Share)
		}
	}
}
