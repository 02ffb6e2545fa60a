package pipelines

import (
	"context"
	"fmt"
	"time"
)

// Step is one stage's processing of one message, shared by every variant that
// passes envelopes: decode and check the envelope, stamp arrival and start, do
// the stage's work, stamp the finish, and encode it for the next stage.
type Step struct {
	Index    int           // 0-based stage index
	Duration time.Duration // the stage's defined time
	Work     WorkModel
	Worker   string // name stamped on the record, e.g. "p4-S2-w3"
	// Extra is hidden work on top of Duration (Spec.Slowdown): a deliberate
	// regression for testing the gate.
	Extra time.Duration
	// Sampler draws the stage's time for each message when the stage's
	// time is a distribution (Duration is then its mean); nil: Duration.
	Sampler *Sampler
}

// StepsFor returns one Step per stage of spec, each stamped with the worker
// name worker(i); a stage with a service-time distribution gets a Sampler
// seeded from spec.Seed, the stage and that name (see StreamSeed).
func StepsFor(spec Spec, worker func(i int) string) []Step {
	steps := make([]Step, spec.Stages())
	for i, d := range spec.Durations {
		steps[i] = Step{Index: i, Duration: d, Work: spec.Work, Worker: worker(i)}
		if spec.Random(i) {
			steps[i].Sampler = NewSampler(spec.Time(i), spec.Seed, i, steps[i].Worker)
		}
		if i < len(spec.Slowdown) {
			steps[i].Extra = spec.Slowdown[i]
		}
	}
	return steps
}

// Process runs the step on the encoded message data, which arrived at the
// stage at arrived. env is scratch space reused between calls; the result is
// appended to out[:0]. A message that is not an envelope, or not at this stage
// of its journey, is an error and no work is done.
func (s Step) Process(ctx context.Context, data []byte, arrived time.Time, env *Envelope, out []byte) ([]byte, error) {
	if err := env.Decode(data); err != nil {
		return out, fmt.Errorf("stage %s: decode: %w", StageName(s.Index), err)
	}
	if err := s.Run(ctx, env, arrived); err != nil {
		return out, err
	}
	out, err := env.Append(out[:0])
	if err != nil {
		return out, fmt.Errorf("stage %s: %w", StageName(s.Index), err)
	}
	return out, nil
}

// Run does the stage's work on a decoded envelope and appends its record.
// The envelope must have passed exactly the stages before this one.
func (s Step) Run(ctx context.Context, env *Envelope, arrived time.Time) error {
	if len(env.Stages) != s.Index {
		return fmt.Errorf("stage %s: %w: message %s (seq %d) has %d stage records, want %d",
			StageName(s.Index), ErrMalformed, env.ID, env.Seq, len(env.Stages), s.Index)
	}
	d, drawn := s.Duration, time.Duration(0)
	if s.Sampler != nil {
		d = s.Sampler.Next()
		drawn = d
	}
	started := time.Now()
	if err := DoWork(ctx, s.Work, d+s.Extra); err != nil {
		return fmt.Errorf("stage %s: work on seq %d: %w", StageName(s.Index), env.Seq, err)
	}
	elapsed := time.Since(started) // monotonic: never less than d
	wait := max(started.Sub(arrived), 0)
	start := Stamp(started)
	env.Stages = append(env.Stages, StageRecord{
		Stage:    s.Index + 1,
		Worker:   s.Worker,
		Arrived:  start - int64(wait),
		Started:  start,
		Finished: start + int64(elapsed),
		Drawn:    int64(drawn),
	})
	return nil
}
