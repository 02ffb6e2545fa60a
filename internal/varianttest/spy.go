package varianttest

import (
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natspipe/natspipe/pipelines"
	"github.com/natspipe/natspipe/pipelines/bus"
	"github.com/natspipe/natspipe/pipelines/natsconn"
)

// Spy records, from plain subscriptions beside a stage's queue group, when
// each message entered the stage and whether it left it, and counts the
// completions on the Done subject.
type Spy struct {
	mu       sync.Mutex
	in       map[uint64]time.Time // seq -> when it entered the stage
	out      map[uint64]bool
	finished int
}

// NewSpy watches stage (0-based) of a pipeline of stages stages on conn; it
// is closed in t's Cleanup.
func NewSpy(t testing.TB, conn natsconn.Config, subjects bus.Subjects, stage, stages int) *Spy {
	t.Helper()
	s := &Spy{in: map[uint64]time.Time{}, out: map[uint64]bool{}}
	nc, err := bus.Connect(conn, "spy", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	decode := func(m *nats.Msg) (uint64, bool) {
		var env pipelines.Envelope
		if env.Decode(m.Data) != nil {
			return 0, false
		}
		return env.Seq, true
	}
	handlers := map[string]nats.MsgHandler{
		subjects.Stage(stage): func(m *nats.Msg) {
			if seq, ok := decode(m); ok {
				s.mu.Lock()
				if _, seen := s.in[seq]; !seen {
					s.in[seq] = time.Now()
				}
				s.mu.Unlock()
			}
		},
		subjects.Next(stage, stages): func(m *nats.Msg) {
			if seq, ok := decode(m); ok {
				s.mu.Lock()
				s.out[seq] = true
				s.mu.Unlock()
			}
		},
	}
	count := func(*nats.Msg) {
		s.mu.Lock()
		s.finished++
		s.mu.Unlock()
	}
	if subjects.Next(stage, stages) == subjects.Done() {
		prev := handlers[subjects.Done()]
		handlers[subjects.Done()] = func(m *nats.Msg) { prev(m); count(m) }
	} else {
		handlers[subjects.Done()] = count
	}
	for subj, h := range handlers {
		if _, err := bus.Subscribe(nc, subj, "", h); err != nil {
			t.Fatal(err)
		}
	}
	if err := nc.FlushTimeout(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	return s
}

// Completions counts the messages seen on the Done subject.
func (s *Spy) Completions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.finished
}

// Entered counts the messages seen entering the stage.
func (s *Spy) Entered() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.in)
}

// Vanished lists, ascending, the messages that entered the stage and never
// left it.
func (s *Spy) Vanished() []uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var v []uint64
	for seq := range s.in {
		if !s.out[seq] {
			v = append(v, seq)
		}
	}
	slices.Sort(v)
	return v
}

// stuck lists the messages in the stage that have not left it for at
// least age since they entered it or since since, whichever is later: a
// message entered before since counts too (the one a pulling worker
// stopped at since was working on).
func (s *Spy) stuck(since time.Time, age time.Duration) []uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var v []uint64
	for seq, at := range s.in {
		if !s.out[seq] && time.Since(later(at, since)) >= age {
			v = append(v, seq)
		}
	}
	return v
}

// Stuck is how long a message must sit in a stage, since one of its workers
// was stopped (or since it entered, if later), to be taken as held by the
// stopped worker: far more than a live worker's queue takes to pass (a
// window of messages in a few ms each), and less than an at-least-once
// transport's AckWait in the tests that use it (after which the message
// moves on to a live worker).
const Stuck = time.Second

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// KillHolding SIGKILLs the worker process pid at a moment it holds at
// least one message of the spied stage, as the spy observes it: it stops
// the worker (SIGSTOP), waits, within timeout, until a message has stayed
// in the stage Stuck since the stop (the one the stopped worker was working
// on, or, over core NATS, one of the share the queue group keeps handing
// it, which it cannot pass on), then kills it. It returns the messages seen held and the kill's time.
func (s *Spy) KillHolding(t testing.TB, pid int, timeout time.Duration) ([]uint64, time.Time) {
	t.Helper()
	stopped := time.Now()
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatalf("stop pid %d: %v", pid, err)
	}
	for {
		if held := s.stuck(stopped, Stuck); len(held) > 0 {
			if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
				t.Fatalf("kill pid %d: %v", pid, err)
			}
			slices.Sort(held)
			return held, time.Now()
		}
		if time.Since(stopped) > timeout {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("no message held by the stopped worker (pid %d) after %v", pid, timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
