package benchkit

import (
	"strings"
	"testing"
)

func TestCheckEnv(t *testing.T) {
	env := map[string]string{}
	getenv := func(k string) string { return env[k] }
	if err := CheckEnv(getenv); err != nil {
		t.Fatalf("empty environment: %v", err)
	}
	env = map[string]string{
		"NATSPIPE_CLOCK":       "bogus",
		"NATSPIPE_WINDOW":      "2000000",
		"NATSPIPE_INFLIGHT":    "-1",
		"NATSPIPE_CONCURRENCY": "5000",
		"NATSPIPE_TIMEOUT":     "1000h",
		"NATSPIPE_PAYLOAD":     "1e9",
		"NATSPIPE_TOPOLOGY":    "cluster5",
	}
	err := CheckEnv(getenv)
	if err == nil {
		t.Fatal("bad environment accepted")
	}
	for k, v := range env {
		if !strings.Contains(err.Error(), k+`="`+v+`"`) {
			t.Errorf("error does not name %s=%q: %v", k, v, err)
		}
	}
}

func TestTopologies(t *testing.T) {
	for v, want := range map[string]string{"": "single", "single": "single", "cluster3": "cluster3", "all": "single,cluster3"} {
		got, err := Topologies(func(string) string { return v })
		if err != nil || strings.Join(got, ",") != want {
			t.Errorf("%s=%q: %v, %v; want %s", EnvTopology, v, got, err, want)
		}
	}
}

// TestPrintUnits checks the unit metadata every benchmark binary prints:
// one line per custom unit of benchunits, as reported, with assume=nothing.
func TestPrintUnits(t *testing.T) {
	var b strings.Builder
	PrintUnits(&b)
	want := []string{
		"Unit eff better=higher assume=nothing",
		"Unit imbalance better=lower assume=nothing",
		"Unit msgs/s better=higher assume=nothing",
		"Unit ns/hop better=lower assume=nothing",
		"Unit of-raw better=higher assume=nothing",
		"Unit p50-ms better=lower assume=nothing",
		"Unit p90-ms better=lower assume=nothing",
		"Unit p99-ms better=lower assume=nothing",
		"Unit startup-ms better=lower assume=nothing",
		"Unit x-raw better=lower assume=nothing",
	}
	if got := b.String(); got != strings.Join(want, "\n")+"\n" {
		t.Errorf("output:\n%s\nwant:\n%s", got, strings.Join(want, "\n"))
	}
}
