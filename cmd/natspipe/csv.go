package main

import (
	"bufio"
	"encoding/csv"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/natspipe/natspipe/pipelines"
	"github.com/natspipe/natspipe/pipelines/variants"
	"github.com/natspipe/natspipe/pipelines/worker"
)

// csvHeader is the header of natspipe run -csv, one column per field of
// csvRow. A configuration column a variant does not take is empty (alloc
// for P0..P3), as is a number that is not finite (the bound and
// efficiency of a pipeline with zero stage times).
func csvHeader() []string {
	return []string{
		"time", "variant", "transport", "durations", "work", "payload",
		"alloc", "mode", "concurrency", "inflight", "window", "rate", "load", "arrivals",
		"n", "completed", "elapsed_s", "msgs_per_s", "bound_msgs_per_s", "eff",
		"p50_ms", "p90_ms", "p99_ms", "mean_ms",
		"lost", "late", "duplicates", "rejected", "passed",
	}
}

// csvRow is one run as a row under csvHeader: the configuration o ran
// (what res does not record) and what res measured.
func csvRow(o runOptions, res *pipelines.Result) []string {
	num := func(x float64, prec int) string {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return ""
		}
		return strconv.FormatFloat(x, 'f', prec, 64)
	}
	ms := func(d time.Duration) string { return num(float64(d)/float64(time.Millisecond), 3) }
	v, _ := variants.Lookup(o.variant)
	takes := func(p variants.Param, val string) string {
		if v.Takes(p) {
			return val
		}
		return ""
	}
	concurrency := 1
	if o.mode == string(worker.Async) {
		concurrency = o.concurrency
		if concurrency == 0 {
			concurrency = worker.DefaultConcurrency
		}
	}
	var window, rate, load, arrivals string
	if res.Rate > 0 {
		rate, arrivals = num(res.Rate, 3), o.arrivals
		if o.load > 0 {
			load = num(o.load, 3)
		}
	} else {
		window = strconv.Itoa(res.Window)
	}
	mean := math.NaN()
	if res.Latency != nil && res.Latency.TotalCount() > 0 {
		mean = res.Latency.Mean() / 1e3 // µs to ms
	}
	start := res.Start
	if start.IsZero() {
		start = time.Now()
	}
	return []string{
		start.Format(time.RFC3339), res.Variant, res.Transport, res.Spec.TimesString(), string(res.Spec.Work), strconv.Itoa(res.Spec.PayloadSize),
		takes(variants.Alloc, o.alloc), takes(variants.Mode, o.mode), takes(variants.Concurrency, strconv.Itoa(concurrency)),
		takes(variants.Inflight, strconv.Itoa(o.inflight)), window, rate, load, arrivals,
		strconv.Itoa(res.N), strconv.Itoa(res.Completed), num(res.Elapsed.Seconds(), 3), num(res.Throughput, 1), num(res.Bound, 1), num(res.Efficiency(), 3),
		ms(res.LatencyAt(50)), ms(res.LatencyAt(90)), ms(res.LatencyAt(99)), num(mean, 3),
		strconv.Itoa(len(res.Lost)), strconv.Itoa(res.Late), strconv.Itoa(res.Duplicates), strconv.Itoa(res.Rejected),
		strconv.FormatBool(res.Err() == nil),
	}
}

// probeCSV checks, before the run, that the run's row can be appended to
// path: its directory exists, the file can be opened for appending (a new
// one is created and removed again), and a file already holding lines has
// natspipe run's header. Every error is a usage error naming -csv and the
// path.
func probeCSV(path string) error {
	if path == "" {
		return nil
	}
	dir := filepath.Dir(path)
	if fi, err := os.Stat(dir); err != nil {
		return usagef("-csv %s: directory %s: %v", path, dir, unwrapPath(err))
	} else if !fi.IsDir() {
		return usagef("-csv %s: %s is not a directory", path, dir)
	}
	_, statErr := os.Stat(path)
	created := errors.Is(statErr, fs.ErrNotExist)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return usagef("-csv %s: %v", path, unwrapPath(err))
	}
	if err := f.Close(); err != nil {
		return usagef("-csv %s: %v", path, err)
	}
	if created {
		if err := os.Remove(path); err != nil {
			return usagef("-csv %s: remove the probe: %v", path, err)
		}
		return nil
	}
	first, err := firstLine(path)
	if err != nil {
		return usagef("-csv %s: %v", path, unwrapPath(err))
	}
	if want := strings.Join(csvHeader(), ","); first != "" && first != want {
		return usagef("-csv %s: its first line is not natspipe run's header (%s): give a new file or one natspipe run -csv wrote", path, want)
	}
	return nil
}

// firstLine is the first line of the file at path, "" when it is empty.
func firstLine(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	s.Buffer(make([]byte, 0, 4096), 1<<20)
	if s.Scan() {
		return strings.TrimSuffix(s.Text(), "\r"), nil
	}
	return "", s.Err()
}

// unwrapPath is err without its *fs.PathError's operation and path, which
// the messages above name already.
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// appendCSV appends the run's row to path, after the header when the file
// is new or empty.
func appendCSV(path string, o runOptions, res *pipelines.Result) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("-csv: append the run's row: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("-csv: append the run's row: %w", err)
	}
	w := csv.NewWriter(f)
	if fi.Size() == 0 {
		_ = w.Write(csvHeader()) // a write error is w.Error's, below
	}
	_ = w.Write(csvRow(o, res))
	w.Flush()
	if err := errors.Join(w.Error(), f.Close()); err != nil {
		return fmt.Errorf("-csv: append the run's row to %s: %w", path, err)
	}
	return nil
}
