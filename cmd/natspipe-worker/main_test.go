package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/natspipe/natspipe/internal/benchkit"
	"github.com/natspipe/natspipe/internal/natstest"
	"github.com/natspipe/natspipe/internal/varianttest"
	"github.com/natspipe/natspipe/pipelines"
	"github.com/natspipe/natspipe/pipelines/bus"
	"github.com/natspipe/natspipe/pipelines/fleet"
	"github.com/natspipe/natspipe/pipelines/natsconn"
	"github.com/natspipe/natspipe/pipelines/p3"
	"github.com/natspipe/natspipe/pipelines/p4"
	"github.com/natspipe/natspipe/pipelines/worker"
)

// build compiles the command into a temporary directory.
func build(t *testing.T) string {
	t.Helper()
	gotool, err := exec.LookPath("go")
	if err != nil {
		gotool = filepath.Join(os.Getenv("GOROOT"), "bin", "go")
		if _, err := os.Stat(gotool); err != nil {
			t.Skip("no go tool to build the command with")
		}
	}
	bin := filepath.Join(t.TempDir(), "natspipe-worker")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, gotool, "build", "-o", bin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func TestCommand(t *testing.T) {
	bin := build(t)

	t.Run("exit status", func(t *testing.T) {
		for _, tc := range []struct {
			args   []string
			status int
			want   string
		}{
			{[]string{"-h"}, 0, "usage: natspipe-worker -stage S2"},
			{nil, 2, "-stage is required"},
			{[]string{"-stage", "S5"}, 2, `stage "S5": want S1..S4`},
			{[]string{"-stage", "sideways"}, 2, `stage "sideways"`},
			{[]string{"-stage", "S2", "-work", "nap"}, 2, `work model "nap"`},
			{[]string{"-stage", "S2", "-unknown"}, 2, "flag provided but not defined: -unknown"},
			{[]string{"-stage", "S2", "-url", "tcp://127.0.0.1:4222"}, 2, `scheme "tcp"`},
			{[]string{"-stage", "S2", "-url", "nats://127.0.0.1:1"}, 1, "connect"},
		} {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			cmd := exec.CommandContext(ctx, bin, tc.args...)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			err := cmd.Run()
			cancel()
			var ee *exec.ExitError
			if err != nil && !errors.As(err, &ee) {
				t.Fatal(err)
			}
			if got := cmd.ProcessState.ExitCode(); got != tc.status || !strings.Contains(stderr.String(), tc.want) {
				t.Errorf("%q: exit %d, stderr %q; want %d mentioning %q", tc.args, got, stderr.String(), tc.status, tc.want)
			}
		}
	})

	// The command serves as P3's and P4's worker process.
	t.Run("p3", func(t *testing.T) {
		srv := natstest.Start(t)
		spec := pipelines.Spec{Durations: []time.Duration{2 * time.Millisecond, 8 * time.Millisecond, 2 * time.Millisecond, 2 * time.Millisecond}, Work: pipelines.Sleep, PayloadSize: 16}
		start := func(ctx context.Context, conn natsconn.Config, subjects bus.Subjects, spec pipelines.Spec, sink pipelines.Sink) (benchkit.Closer, error) {
			return p3.Start(ctx, p3.Options{NATS: conn, Subjects: subjects, Launcher: fleet.Command(bin)}, spec, sink)
		}
		fx := varianttest.Start(t, srv.Conn, start, pipelines.RunConfig{Spec: spec, Variant: "p3", Bound: p3.Bound(spec, worker.Sync, 0), Timeout: time.Minute})
		res, err := fx.Runner.Run(context.Background(), fx.Endpoint, 100)
		if err != nil {
			t.Fatal(err)
		}
		varianttest.CheckExactlyOnce(t, spec, res)
		t.Log(res.Summary())
	})

	t.Run("p4 SIGTERM", func(t *testing.T) {
		srv := natstest.Start(t)
		spec := pipelines.Spec{Durations: []time.Duration{time.Millisecond, 4 * time.Millisecond, time.Millisecond, time.Millisecond}, Work: pipelines.Sleep}
		p, err := p4.Start(context.Background(), p4.Options{Alloc: p4.Alloc{1, 2, 1, 1}, Processes: fleet.Processes{NATS: srv.Conn, Subjects: bus.NewSubjects(), Launcher: fleet.Command(bin)}}, spec, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		// A worker stopped from outside by SIGTERM drains and exits 0; the
		// fleet, not having asked, reports it.
		if err := syscall.Kill(p.PID("p4-S2-w2"), syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(20 * time.Second)
		for p.Err() == nil && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if err := p.Err(); err == nil || !strings.Contains(err.Error(), "p4-S2-w2") || !strings.Contains(err.Error(), "exit status 0") || !strings.Contains(err.Error(), "stopping") {
			t.Errorf("Err() = %v", err)
		}
	})
}
