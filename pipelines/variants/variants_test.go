package variants_test

import (
	"errors"
	"math"
	"testing"

	"github.com/natspipe/natspipe/pipelines"
	"github.com/natspipe/natspipe/pipelines/p4"
	"github.com/natspipe/natspipe/pipelines/variants"
	"github.com/natspipe/natspipe/pipelines/worker"
)

func TestRegistry(t *testing.T) {
	spec := pipelines.DefaultSpec()
	seen := map[string]bool{}
	for _, v := range variants.All() {
		if seen[v.Name] {
			t.Errorf("variant %s listed twice", v.Name)
		}
		seen[v.Name] = true
		if v.Start == nil || v.Bound == nil || v.Window == nil || v.Label == nil || v.Doc == "" {
			t.Errorf("%s: incomplete entry", v.Name)
		}
		if v.Messaging != v.Takes(variants.Transport) {
			t.Errorf("%s: messaging %v but takes transport %v", v.Name, v.Messaging, v.Takes(variants.Transport))
		}
		got, err := variants.Lookup(v.Name)
		if err != nil || got.Name != v.Name {
			t.Errorf("Lookup(%s) = %s, %v", v.Name, got.Name, err)
		}
		cfg := variants.Config{Spec: spec}
		if b := v.Bound(cfg); !(b > 0) || math.IsInf(b, 1) {
			t.Errorf("%s: bound %v", v.Name, b)
		}
		if w := v.Window(cfg, v.Bound(cfg)); w < 2 {
			t.Errorf("%s: window %d", v.Name, w)
		}
	}
	if _, err := variants.Lookup("p9"); !errors.Is(err, variants.ErrUnknown) {
		t.Errorf("Lookup(p9): %v", err)
	}
}

// TestBounds holds the registry's bounds to the study's table.
func TestBounds(t *testing.T) {
	spec := pipelines.DefaultSpec() // 10, 40, 10, 10 ms
	for _, c := range []struct {
		name string
		cfg  variants.Config
		want float64
	}{
		{"p0", variants.Config{Spec: spec}, 1 / 0.07},
		{"p1", variants.Config{Spec: spec}, 1 / 0.07},
		{"p2", variants.Config{Spec: spec, Inflight: 2}, 2 / 0.07},
		{"p3", variants.Config{Spec: spec}, 25},
		{"p4", variants.Config{Spec: spec}, 100},                     // 1-4-1-1 by default
		{"p4", variants.Config{Spec: spec, Alloc: p4.Ones(4)}, 25},   // one each
		{"p4", variants.Config{Spec: spec, Mode: worker.Async}, 400}, // 4 x concurrency 4 / 40 ms
	} {
		v, err := variants.Lookup(c.name)
		if err != nil {
			t.Fatal(err)
		}
		if got := v.Bound(c.cfg); math.Abs(got-c.want) > 1e-9*c.want {
			t.Errorf("%s %s: bound %v, want %v", c.name, v.Label(c.cfg), got, c.want)
		}
	}
}
