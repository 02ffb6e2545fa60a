package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/natspipe/natspipe/pipelines"
)

// exitInterrupted is natspipe run's exit status when Ctrl-C (SIGINT) or
// SIGTERM stopped it: 128 + SIGINT, as a shell reports a command Ctrl-C
// ended.
const exitInterrupted = 130

// console is the terminal side of natspipe run: the live progress line on
// stderr (when stderr is a terminal and -quiet is not given), and Ctrl-C.
// The first Ctrl-C (or SIGTERM) stops the run's source: the run drains
// what is in flight (at most pipelines.RunConfig.Drain), prints its partial
// result, writes its trace, stops its workers and exits 130. A second one
// kills the run's worker processes and exits 130 at once.
//
// execute takes it in runOptions.console; nil (sweep, plan -verify,
// tests) draws nothing and handles no signal.
type console struct {
	w        io.Writer // stderr
	progress bool      // draw the progress line
	// transient erases the progress line at the run's end (natspipe sweep
	// prints a line of its own per configuration); else the line stays
	// with the run's last counts.
	transient bool
	// exit ends the process on a second interrupt (os.Exit).
	exit func(code int)

	mu    sync.Mutex
	label string        // names the run on the progress line instead of its variant and transport
	line  *progressLine // the run's progress line while the run lasts
	kill  func()        // kills the run's worker processes; nil when none
	drain time.Duration // the run's drain bound, for the notice; 0 unknown
}

// newConsole is the console of a natspipe run writing to stderr: the
// progress line is drawn when want (not -quiet) and stderr is a terminal.
func newConsole(stderr io.Writer, want bool) *console {
	return &console{w: stderr, progress: want && isTerminal(stderr), exit: os.Exit}
}

// isTerminal reports whether w is a terminal (golang.org/x/term).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// startRun returns the RunConfig.Progress hook that draws a run of n
// messages named name at bound msgs/s on the progress line; nil when the
// console draws none.
func (c *console) startRun(name string, n int, bound float64) func(pipelines.Progress) {
	if c == nil || !c.progress {
		return nil
	}
	c.mu.Lock()
	if c.label != "" {
		name = c.label
	}
	l := newProgressLine(c.w, name, n, bound)
	c.line = l
	c.mu.Unlock()
	return func(p pipelines.Progress) {
		c.mu.Lock()
		defer c.mu.Unlock()
		l.update(p)
	}
}

// endRun ends the run's progress line: left on the terminal with its last
// counts and what ended the run, or erased when the console is transient.
func (c *console) endRun(res *pipelines.Result) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.line != nil {
		c.line.end(res, c.transient)
		c.line = nil
	}
}

// setLabel names the next run on the progress line ("[3/20] P4/alloc=...").
func (c *console) setLabel(label string) {
	c.mu.Lock()
	c.label = label
	c.mu.Unlock()
}

// setKill sets what a second interrupt kills: the run's worker processes.
func (c *console) setKill(kill func()) {
	if c == nil {
		return
	}
	c.mu.Lock()
	c.kill = kill
	c.mu.Unlock()
}

// setDrain records the run's drain bound for the interrupt's notice.
func (c *console) setDrain(d time.Duration) {
	if c == nil {
		return
	}
	c.mu.Lock()
	c.drain = d
	c.mu.Unlock()
}

// notice prints a line on stderr, clearing the progress line first (the
// next update draws it again).
func (c *console) notice(format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.line != nil {
		c.line.clear()
	}
	fmt.Fprintf(c.w, format+"\n", args...)
}

// signalName is how the notices and the result name what stopped the run.
func signalName(s os.Signal) string {
	switch s {
	case os.Interrupt:
		return "Ctrl-C (SIGINT)"
	case syscall.SIGTERM:
		return "SIGTERM"
	}
	return s.String()
}

// interruptible returns a context that the first SIGINT or SIGTERM
// cancels, with the signal as its cause, and a stop that ends the signal
// handling (call it when the run has ended). A second signal before stop
// kills the run's worker processes and exits 130 at once.
func (c *console) interruptible(parent context.Context) (context.Context, func()) {
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	return c.watch(parent, sigs, func() { signal.Stop(sigs) })
}

// watch is interruptible on the signals sigs brings; unnotify stops them.
func (c *console) watch(parent context.Context, sigs <-chan os.Signal, unnotify func()) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(parent)
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		var first os.Signal
		select {
		case first = <-sigs:
		case <-quit:
			return
		}
		c.mu.Lock()
		drain := c.drain
		c.mu.Unlock()
		bound := "a bounded time"
		if drain > 0 {
			bound = "up to " + drain.String()
		}
		again := "the signal again"
		if first == os.Interrupt {
			again = "Ctrl-C again"
		}
		c.notice("natspipe run: %s: stopping the source; waiting %s for the messages in flight (%s to quit at once)",
			signalName(first), bound, again)
		cancel(errors.New(signalName(first)))
		select {
		case s := <-sigs:
			c.notice("natspipe run: %s again: killing the worker processes and quitting", signalName(s))
			c.mu.Lock()
			kill := c.kill
			c.mu.Unlock()
			if kill != nil {
				kill()
			}
			c.exit(exitInterrupted)
		case <-quit:
		}
	}()
	var once sync.Once
	return ctx, func() {
		once.Do(func() {
			unnotify()
			close(quit)
			<-done
			cancel(nil)
		})
	}
}

// progressLine is a run's live progress on a terminal: one line, redrawn
// at each RunConfig.Progress call (every 200 ms) with
// github.com/schollz/progressbar: the bar, then the run's name and
// progressFields.
type progressLine struct {
	w     io.Writer
	bar   *progressbar.ProgressBar
	name  string
	n     int
	bound float64
	last  pipelines.Progress
}

func newProgressLine(w io.Writer, name string, n int, bound float64) *progressLine {
	bar := progressbar.NewOptions(n,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetWidth(24),
		progressbar.OptionSetPredictTime(false),
		progressbar.OptionSetElapsedTime(false),
		progressbar.OptionShowDescriptionAtLineEnd(),
		progressbar.OptionUseANSICodes(true),
		progressbar.OptionSetDescription(name),
	)
	return &progressLine{w: w, bar: bar, name: name, n: n, bound: bound}
}

// update draws p.
func (l *progressLine) update(p pipelines.Progress) {
	l.last = p
	l.bar.Describe(l.describe(progressFields(p, l.bound)))
	_ = l.bar.Set(min(p.Completed, l.n))
}

// describe is the text after the bar: the name and fields, the name cut
// so that the whole line fits the terminal (a line that wraps cannot be
// redrawn in place).
func (l *progressLine) describe(fields string) string {
	name := l.name
	if f, ok := l.w.(*os.File); ok {
		if width, _, err := term.GetSize(int(f.Fd())); err == nil && width > 0 {
			// "100% " and the bar (shrunk to 8 columns at least) before it.
			room := width - len(" 100% ||  ") - 8 - len(": ") - len(fields)
			if r := []rune(name); len(r) > room {
				name = string(r[:max(room-1, 0)]) + "…"
			}
		}
	}
	return name + ": " + fields
}

// clear erases the line (a notice follows).
func (l *progressLine) clear() { _ = l.bar.Clear() }

// end draws the run's last counts with what ended it, and moves to the
// next line; or erases the line when clear.
func (l *progressLine) end(res *pipelines.Result, clear bool) {
	if clear {
		l.clear()
		return
	}
	fields := progressFields(l.last, l.bound)
	if res != nil && res.Interrupted() {
		fields += ", interrupted"
	}
	l.bar.Describe(l.describe(fields))
	fmt.Fprintln(l.w)
}

// progressFields are the progress line's numbers: "412/3000 msgs, 24.9
// msgs/s, eff 0.996, lost 0, ETA 1m44s". The rate is the completions so
// far over the time since the first send, eff that rate over the bound
// ("-" when unbounded), lost the messages declared lost (not back within
// the loss timeout) so far, and ETA the messages not yet settled at that
// rate ("-" before the first completion). The run's last progress
// (Progress.Done) says "in 2m2s", its whole time, instead of an ETA.
func progressFields(p pipelines.Progress, bound float64) string {
	rate := 0.0
	if p.Elapsed > 0 {
		rate = float64(p.Completed) / p.Elapsed.Seconds()
	}
	eff := "-"
	if bound > 0 && !math.IsInf(bound, 0) {
		eff = fmt.Sprintf("%.3f", rate/bound)
	}
	eta := "ETA -"
	switch left := p.N - p.Completed - p.Lost; {
	case p.Done:
		eta = "in " + p.Elapsed.Round(10*time.Millisecond).String()
	case left <= 0:
		eta = "ETA 0s"
	case rate > 0:
		eta = "ETA " + time.Duration(float64(left)/rate*float64(time.Second)).Round(time.Second).String()
	}
	return fmt.Sprintf("%d/%d msgs, %.1f msgs/s, eff %s, lost %d, %s", p.Completed, p.N, rate, eff, p.Lost, eta)
}
