package worker

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/natspipe/natspipe/internal/benchkit"
	"github.com/natspipe/natspipe/internal/natstest"
	"github.com/natspipe/natspipe/pipelines/bus"
)

// scrape GETs url and returns the body, failing t on any error.
func scrape(t *testing.T, url string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s, %v", url, resp.Status, err)
	}
	return string(b)
}

// A worker with a metrics address serves Prometheus metrics there (the
// address announced in its ready record, a port 0 resolved): after n
// messages its service-time and wait histograms count n each, no
// service time falls below the stage's time, and its handled counter says
// n. Once it has stopped, nothing listens there.
func TestMetrics(t *testing.T) {
	benchkit.CheckLeaks(t)
	srv := natstest.Start(t)
	spec := testSpec() // S2: 8 ms
	subjects := bus.NewSubjects()
	nc, err := bus.Connect(srv.Conn, "test", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	ready := collectRaw(t, nc, ReadySubject(subjects))
	out := collect(t, nc, subjects.Stage(2))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := Run(ctx, Config{NATS: srv.Conn, Subjects: subjects, Stage: 1, Spec: spec, Name: "m-S2", MetricsAddr: "127.0.0.1:0"})
		done <- err
	}()
	var hello Stats
	if err := json.Unmarshal(ready.wait(t, 1)[0], &hello); err != nil || hello.Metrics == "" || strings.HasSuffix(hello.Metrics, ":0") {
		t.Fatalf("ready record %+v (%v): want the metrics address", hello, err)
	}
	const n = 20
	for _, m := range stage1(t, spec, n) {
		if err := nc.Publish(subjects.Stage(1), m); err != nil {
			t.Fatal(err)
		}
	}
	out.wait(t, n)
	url := "http://" + hello.Metrics + MetricsPath
	body := scrape(t, url)
	labels := fmt.Sprintf(`pipeline=%q,stage="S2",worker="m-S2"`, subjects.Prefix)
	for _, want := range []string{
		fmt.Sprintf("%s_count{%s} %d\n", MetricService, labels, n),
		fmt.Sprintf("%s_count{%s} %d\n", MetricWait, labels, n),
		fmt.Sprintf("%s{%s} %d\n", MetricHandled, labels, n),
		fmt.Sprintf("%s{%s} 0\n", MetricRejected, labels),
		// 6.4 ms, the bucket below the stage's 8 ms, holds none.
		fmt.Sprintf("%s_bucket{%s,le=\"0.0064\"} 0\n", MetricService, labels),
		fmt.Sprintf("%s_bucket{%s,le=\"+Inf\"} %d\n", MetricService, labels, n),
		"go_goroutines ",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics do not say %q", want)
		}
	}
	if t.Failed() {
		t.Logf("metrics:\n%s", body)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return when its context ended")
	}
	ctx2, cancel2 := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel2()
	req, _ := http.NewRequestWithContext(ctx2, http.MethodGet, url, nil)
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		t.Errorf("metrics still served after the worker stopped: %s", resp.Status)
	}
}
