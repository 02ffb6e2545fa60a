package trace_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/natspipe/natspipe/pipelines"
	"github.com/natspipe/natspipe/pipelines/p0"
	"github.com/natspipe/natspipe/pipelines/trace"
)

// Write a run's trace into a directory and read it back, from the JSON
// Lines file (everything) and from the CSV file (one row per message and
// stage).
func ExampleReadFile() {
	dir, err := os.MkdirTemp("", "natspipe-trace-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	// A run to trace: three messages through P0's two stages of zero
	// duration.
	spec := pipelines.Spec{Durations: make([]time.Duration, 2), Work: pipelines.Sleep, PayloadSize: 16}
	r, err := pipelines.NewRunner(pipelines.RunConfig{Spec: spec, Variant: "p0"})
	if err != nil {
		log.Fatal(err)
	}
	p, err := p0.New(spec, r)
	if err != nil {
		log.Fatal(err)
	}
	res, err := r.Run(context.Background(), p, 3)
	if err != nil {
		log.Fatal(err)
	}
	path, err := trace.Write(dir, "example/run", res, "")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(filepath.Base(path))

	t, err := trace.ReadFile(path)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("variant %s, %d stages, %d messages, %d completed, %d lost\n",
		t.Meta.Variant, t.Meta.Stages, len(t.Messages), t.Meta.Completed, len(t.Meta.Lost))
	for _, m := range t.Messages {
		fmt.Printf("seq %d: completed %v, stages", m.Seq, m.Completed())
		for _, st := range m.Stages {
			fmt.Printf(" S%d by %s", st.Stage, st.Worker)
		}
		fmt.Println()
	}

	c, err := trace.ReadFile(filepath.Join(dir, "example_run.csv"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("from CSV: variant %s, %d messages\n", c.Meta.Variant, len(c.Messages))
	// Output:
	// example_run.jsonl
	// variant p0, 2 stages, 3 messages, 3 completed, 0 lost
	// seq 0: completed true, stages S1 by p0-S1 S2 by p0-S2
	// seq 1: completed true, stages S1 by p0-S1 S2 by p0-S2
	// seq 2: completed true, stages S1 by p0-S1 S2 by p0-S2
	// from CSV: variant p0, 3 messages
}
