package pipelines_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/natspipe/natspipe/pipelines"
)

// inProcess is a P0-like Sender: it runs each message through every stage
// in the caller's goroutine and hands it back to its sink, the Runner. A
// messaging variant does the same across NATS subjects or processes.
type inProcess struct {
	steps []pipelines.Step
	sink  pipelines.Sink
	env   pipelines.Envelope
}

func (p *inProcess) Send(ctx context.Context, msg []byte) error {
	if err := p.env.Decode(msg); err != nil {
		p.sink.Reject("in-process", err) // a malformed message is counted, the run goes on
		return nil
	}
	for _, s := range p.steps {
		if err := s.Run(ctx, &p.env, time.Now()); err != nil {
			return err
		}
	}
	out, err := p.env.Append(nil)
	if err != nil {
		return err
	}
	p.sink.Complete(out, time.Now())
	return nil
}

// A Runner sends messages through a pipeline (any Sender) and accounts for
// every one: here five messages through four stages of zero duration, run
// in process.
func ExampleRunner() {
	spec := pipelines.Spec{Durations: make([]time.Duration, 4), Work: pipelines.Sleep, PayloadSize: 16}
	r, err := pipelines.NewRunner(pipelines.RunConfig{Spec: spec, Variant: "in-process"})
	if err != nil {
		log.Fatal(err)
	}
	p := &inProcess{
		steps: pipelines.StepsFor(spec, func(i int) string { return "w-" + pipelines.StageName(i) }),
		sink:  r,
	}
	res, err := r.Run(context.Background(), p, 5)
	if err != nil {
		log.Fatal(err) // lost, duplicated or malformed messages, a stage too fast, a timeout
	}
	fmt.Printf("%s: %d sent, %d completed, %d lost, %d rejected\n", res.Variant, res.N, res.Completed, len(res.Lost), res.Rejected)
	last := res.Records[4]
	fmt.Printf("message seq %d passed %d stages:", last.Seq, len(last.Stages))
	for _, st := range last.Stages {
		fmt.Printf(" %s", st.Worker)
	}
	fmt.Println()
	// Output:
	// in-process: 5 sent, 5 completed, 0 lost, 0 rejected
	// message seq 4 passed 4 stages: w-S1 w-S2 w-S3 w-S4
}
