package pipelines

import (
	"strings"
	"testing"
	"time"
)

func TestParseClock(t *testing.T) {
	for v, wantWall := range map[string]bool{"": false, "monotonic": false, "wall": true} {
		if wall, err := ParseClock(v); err != nil || wall != wantWall {
			t.Errorf("ParseClock(%q) = %v, %v", v, wall, err)
		}
	}
	for _, v := range []string{"bogus", "Wall", "mono"} {
		if _, err := ParseClock(v); err == nil {
			t.Errorf("ParseClock(%q) accepted", v)
		}
		err := CheckClockEnv(func(string) string { return v })
		if want := EnvClock + `="` + v + `": stamp clock`; err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("CheckClockEnv with %q: %v, want it to say %q", v, err, want)
		}
	}
	if err := CheckClockEnv(func(string) string { return "" }); err != nil {
		t.Errorf("unset: %v", err)
	}
}

func TestDurationLimits(t *testing.T) {
	if ds, err := ParseDurations("1h,0,60m"); err != nil || ds[0] != MaxStageDuration {
		t.Errorf("ParseDurations at the limit: %v, %v", ds, err)
	}
	for _, bad := range []string{"1h1ms", "3600001", "NaN", "Inf", "1e300", "-Inf"} {
		if _, err := ParseDurations(bad); err == nil {
			t.Errorf("ParseDurations(%q) accepted", bad)
		}
	}
	for _, bad := range []string{"S1=1h1ms", "S1=NaN", "S1=-1ms"} {
		if _, err := ParseSlowdown(bad, 4); err == nil {
			t.Errorf("ParseSlowdown(%q) accepted", bad)
		}
	}
	s := DefaultSpec()
	s.Durations[1] = 2 * time.Hour
	if err := s.Validate(); err == nil {
		t.Error("Validate accepted a 2h stage")
	}
}

func TestEnvLimits(t *testing.T) {
	env := func(k, v string) Getenv {
		return func(q string) string {
			if q == k {
				return v
			}
			return ""
		}
	}
	for _, tc := range []struct {
		name, v string
		ok      bool
	}{
		{EnvWindow, "1000000", true}, {EnvWindow, "1000001", false},
		{EnvInflight, "10000", true}, {EnvInflight, "10001", false},
		{EnvConcurrency, "1024", true}, {EnvConcurrency, "1025", false},
		{EnvWindow, "-1", false}, {EnvWindow, "x", false},
	} {
		_, err := IntFromEnv(env(tc.name, tc.v), tc.name, 0)
		if (err == nil) != tc.ok {
			t.Errorf("%s=%s: error %v", tc.name, tc.v, err)
		}
		if err != nil && !strings.Contains(err.Error(), tc.name+`="`+tc.v+`": want an integer in [0, `) {
			t.Errorf("%s=%s: message %q", tc.name, tc.v, err)
		}
	}
	if _, err := DurationFromEnv(env(EnvTimeout, "168h"), EnvTimeout, 0); err != nil {
		t.Error(err)
	}
	for _, v := range []string{"169h", "-1s", "0", "x"} {
		if _, err := DurationFromEnv(env(EnvTimeout, v), EnvTimeout, 0); err == nil || !strings.Contains(err.Error(), "want a positive duration up to 168h0m0s") {
			t.Errorf("%s=%s: %v", EnvTimeout, v, err)
		}
	}
}

func TestMaxMessagesFor(t *testing.T) {
	for stages, want := range map[int]int{0: MaxMessages, 1: MaxMessages, 4: MaxMessages, 5: 4_000_000, 64: 312_500} {
		if got := MaxMessagesFor(stages); got != want {
			t.Errorf("MaxMessagesFor(%d) = %d, want %d", stages, got, want)
		}
	}
}
