package worker

import (
	"io"
	"strings"
	"testing"
)

func TestParseArgsBounds(t *testing.T) {
	env := map[string]string{}
	getenv := func(k string) string { return env[k] }
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-mode", "async", "-concurrency", "1025"}, "-concurrency 1025: want 0 (default 4) to 1024"},
		{[]string{"-concurrency", "-1"}, "-concurrency -1: want 0 (default 4) to 1024"},
		{[]string{"-ready-timeout", "2h"}, "-ready-timeout 2h0m0s, -drain-timeout 30s: want at most 1h0m0s"},
		{[]string{"-durations", "1h1ms"}, `"1h1ms" is longer than 1h0m0s`},
	} {
		_, err := ParseArgs(append([]string{"-stage", "S1"}, tc.args...), io.Discard, getenv)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want %q", tc.args, err, tc.want)
		}
	}
	env["NATSPIPE_CLOCK"] = "bogus"
	if _, err := ParseArgs([]string{"-stage", "S1"}, io.Discard, getenv); err == nil || !strings.Contains(err.Error(), `NATSPIPE_CLOCK="bogus"`) {
		t.Errorf("NATSPIPE_CLOCK=bogus: %v", err)
	}
	env["NATSPIPE_CLOCK"] = "wall"
	if _, err := ParseArgs([]string{"-stage", "S1", "-mode", "async", "-concurrency", "1024"}, io.Discard, getenv); err != nil {
		t.Errorf("at the limits: %v", err)
	}
}
