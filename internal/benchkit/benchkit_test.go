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
