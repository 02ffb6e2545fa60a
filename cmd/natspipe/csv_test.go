package main

import (
	"bytes"
	"encoding/csv"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/natspipe/natspipe/internal/benchkit"
)

// TestRunCSV runs natspipe run -csv twice into one file (P0, then P2 over
// an embedded server): the header comes once, then a row per run whose
// fields are the run's, as its summary line printed them.
func TestRunCSV(t *testing.T) {
	benchkit.CheckLeaks(t)
	clearRunEnv(t)
	t.Setenv("NATS_URL", "")
	t.Setenv("NATS_CONTEXT", "")
	path := filepath.Join(t.TempDir(), "runs.csv")
	summary := regexp.MustCompile(`(\d+)/(\d+) msgs in \S+, ([0-9.]+) msgs/s \(bound ([0-9.]+), eff ([0-9.]+)\), p50 (\S+) p99 (\S+), lost (\d+)`)
	runs := [][]string{
		{"-variant", "p0", "-durations", "1ms,2ms,1ms", "-n", "40"},
		{"-variant", "p2", "-durations", "1ms,2ms,1ms", "-n", "40", "-load", "0.5", "-arrivals", "poisson"},
	}
	var sums [][]string
	for _, args := range runs {
		var stdout, stderr bytes.Buffer
		if code := dispatch(append([]string{"run", "-csv", path}, args...), &stdout, &stderr); code != 0 {
			t.Fatalf("%q: exit %d\n%s%s", args, code, stdout.String(), stderr.String())
		}
		m := summary.FindStringSubmatch(stdout.String())
		if m == nil {
			t.Fatalf("%q: no summary line in\n%s", args, stdout.String())
		}
		sums = append(sums, m)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 3 || strings.Join(recs[0], ",") != strings.Join(csvHeader(), ",") {
		t.Fatalf("%d records, the first %q: want the header and 2 rows", len(recs), recs[0])
	}
	col := map[string]int{}
	for i, h := range recs[0] {
		col[h] = i
	}
	for i, row := range recs[1:] {
		m := sums[i]
		get := func(name string) string { return row[col[name]] }
		num := func(name string) float64 {
			v, err := strconv.ParseFloat(get(name), 64)
			if err != nil {
				t.Errorf("row %d: %s %q: %v", i+1, name, get(name), err)
			}
			return v
		}
		ms := func(s string) float64 {
			d, err := time.ParseDuration(s)
			if err != nil {
				t.Errorf("row %d: summary latency %q: %v", i+1, s, err)
			}
			return float64(d) / float64(time.Millisecond)
		}
		if _, err := time.Parse(time.RFC3339, get("time")); err != nil {
			t.Errorf("row %d: time: %v", i+1, err)
		}
		for name, want := range map[string]string{
			"variant": runs[i][1], "durations": "1ms,2ms,1ms", "work": "sleep", "payload": "64",
			"n": m[2], "completed": m[1], "msgs_per_s": m[3], "bound_msgs_per_s": m[4], "eff": m[5],
			"lost": m[8], "late": "0", "duplicates": "0", "rejected": "0", "passed": "true", "alloc": "", "mode": "",
		} {
			if get(name) != want {
				t.Errorf("row %d: %s %q, want %q (the summary's)", i+1, name, get(name), want)
			}
		}
		if p50, p99 := num("p50_ms"), num("p99_ms"); p50 != ms(m[6]) || p99 != ms(m[7]) || p50 > num("p90_ms") || num("p90_ms") > p99 || num("mean_ms") <= 0 {
			t.Errorf("row %d: p50 %v p90 %v p99 %v mean %v ms; the summary's p50 %s p99 %s", i+1, p50, num("p90_ms"), p99, num("mean_ms"), m[6], m[7])
		}
	}
	p0, p2 := recs[1], recs[2]
	if p0[col["transport"]] != "" || p0[col["inflight"]] != "" || p0[col["window"]] == "" || p0[col["rate"]] != "" {
		t.Errorf("P0 closed loop: transport %q inflight %q window %q rate %q", p0[col["transport"]], p0[col["inflight"]], p0[col["window"]], p0[col["rate"]])
	}
	if p2[col["transport"]] != "core" || p2[col["inflight"]] != "64" || p2[col["window"]] != "" || p2[col["load"]] != "0.500" ||
		p2[col["arrivals"]] != "poisson" {
		t.Errorf("P2 open loop: %q", p2)
	}
	if rate, bound := p2[col["rate"]], p2[col["bound_msgs_per_s"]]; rate == "" || bound == "" {
		t.Errorf("P2: rate %q bound %q", rate, bound)
	} else if r, _ := strconv.ParseFloat(rate, 64); r <= 0 {
		t.Errorf("P2: rate %q", rate)
	}
}

// TestRunCSVProbe: a -csv file that cannot take the row is refused
// before the run (exit 2), and the probe leaves no file behind.
func TestRunCSVProbe(t *testing.T) {
	dir := t.TempDir()
	foreign := filepath.Join(dir, "other.csv")
	if err := os.WriteFile(foreign, []byte("a,b\n1,2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ path, want string }{
		{filepath.Join(dir, "none", "x.csv"), "directory " + filepath.Join(dir, "none") + ": no such file or directory"},
		{filepath.Join(foreign, "x.csv"), foreign + " is not a directory"},
		{foreign, "its first line is not natspipe run's header"},
		{dir, "is a directory"},
	} {
		var stdout, stderr bytes.Buffer
		code := dispatch([]string{"run", "-variant", "p0", "-n", "5", "-csv", c.path}, &stdout, &stderr)
		if code != 2 || !strings.Contains(stderr.String(), "-csv "+c.path+": ") || !strings.Contains(stderr.String(), c.want) || stdout.Len() != 0 {
			t.Errorf("-csv %s: exit %d, stderr %q; want 2 and %q", c.path, code, stderr.String(), c.want)
		}
	}
	// A good path is probed and left as it was: no file until a row.
	good := filepath.Join(dir, "new.csv")
	if err := probeCSV(good); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(good); !os.IsNotExist(err) {
		t.Errorf("probe left %s (stat: %v)", good, err)
	}
}
