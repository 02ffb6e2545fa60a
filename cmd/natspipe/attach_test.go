package main

import (
	"strings"
	"testing"
)

// TestRunAttachUsage: -attach and its flags are checked before anything
// starts: each mistake is a usage error (exit 2) naming the flag.
func TestRunAttachUsage(t *testing.T) {
	t.Setenv("NATS_URL", "")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-attach"}, "-attach: needs the workers' NATS server: -url or NATS_URL"},
		{[]string{"-attach", "-variant", "p2", "-url", "nats://127.0.0.1:4222"}, "-attach: -variant p2 has no worker processes to attach to (want p3 or p4)"},
		{[]string{"-attach", "-url", "nats://127.0.0.1:4222", "-prefix", "a.*"}, `-prefix: "a.*": want a subject prefix`},
		{[]string{"-attach", "-url", "nats://127.0.0.1:4222", "-on-worker-exit", "fail"}, "-attach: -worker and -on-worker-exit are for workers natspipe run starts"},
		{[]string{"-prefix", "demo"}, "-prefix: needs -attach"},
		{[]string{"-stop-workers"}, "-stop-workers: needs -attach"},
		{[]string{"-ready-timeout", "10ms"}, "-ready-timeout 10ms: want 1s to 1h0m0s"},
		{[]string{"-replicas", "3"}, "-replicas 3: replicates a JetStream stream; needs -transport js"},
		{[]string{"-replicas", "6", "-transport", "js"}, "-replicas 6: want 0 (1) to 5"},
	} {
		var out, errb strings.Builder
		code := runRun(c.args, &out, &errb)
		if code != exitUsage || !strings.Contains(errb.String(), c.want) || out.Len() != 0 {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want exit 2 and %q", c.args, code, out.String(), errb.String(), c.want)
		}
	}
}
