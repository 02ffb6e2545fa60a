package plots

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"image/color"
	"image/png"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"gonum.org/v1/plot/vg"

	"github.com/natspipe/natspipe/analysis"
	"github.com/natspipe/natspipe/pipelines"
	"github.com/natspipe/natspipe/pipelines/trace"
)

// simulate makes the trace of a closed-loop pipeline of sync workers, alloc[i]
// at stage i, each message taking 0.2 ms per hop: a deterministic stand-in
// for a P4 run.
func simulate(durations []time.Duration, alloc []int, n, window int) *trace.Trace {
	const hop = 200 * time.Microsecond
	start := time.Unix(1700000000, 0)
	t0 := start.UnixNano()
	var b float64 = 1e18
	for i, d := range durations {
		b = min(b, float64(alloc[i])/d.Seconds())
	}
	tr := &trace.Trace{Meta: trace.Meta{
		Variant: "p4", Stages: len(durations), Durations: durations, Work: "sleep",
		N: n, Window: window, Bound: b, Start: start,
	}}
	free := make([][]int64, len(durations)) // each worker's next free time
	for i := range free {
		free[i] = make([]int64, alloc[i])
	}
	for k := 0; k < n; k++ {
		sent := t0
		if k >= window {
			sent = tr.Messages[k-window].Received
		}
		m := trace.Message{Seq: uint64(k), ID: "id" + strings.Repeat("x", k%3), Intended: sent, Sent: sent}
		at := sent
		for s, d := range durations {
			at += int64(hop)
			w := 0
			for j := range free[s] {
				if free[s][j] < free[s][w] {
					w = j
				}
			}
			st := max(at, free[s][w])
			fin := st + int64(d)
			free[s][w] = fin
			m.Stages = append(m.Stages, trace.Stage{Stage: s + 1, Worker: pipelines.StageName(s) + "-w" + string(rune('0'+w)),
				Arrived: at, Started: st, Finished: fin})
			at = fin
		}
		m.Received = at + int64(hop)
		tr.Messages = append(tr.Messages, m)
	}
	tr.Meta.Messages, tr.Meta.Completed = n, n
	return tr
}

func sweep(t *testing.T) *analysis.Report {
	t.Helper()
	ds := []time.Duration{time.Millisecond, 4 * time.Millisecond, time.Millisecond, time.Millisecond}
	var trs []*trace.Trace
	for _, alloc := range [][]int{{1, 1, 1, 1}, {1, 2, 1, 1}, {1, 4, 1, 1}} {
		trs = append(trs, simulate(ds, alloc, 200, 16))
	}
	rep, err := analysis.Analyze(trs, analysis.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func TestSimulatedSweep(t *testing.T) {
	// The stand-in must behave as the theory says, or the pictures lie.
	rep := sweep(t)
	for _, r := range rep.Runs {
		if r.Efficiency < 0.9 || r.Efficiency > 1.01 {
			t.Errorf("%s: efficiency %.3f, want about 1", r.Label, r.Efficiency)
		}
	}
	if rep.Runs[0].Bottleneck != "S2" || rep.Runs[0].Label != "p4 1-1-1-1" {
		t.Errorf("run 0: %s bottleneck %s, want p4 1-1-1-1 and S2", rep.Runs[0].Label, rep.Runs[0].Bottleneck)
	}
}

// checkSelfContained checks that a report needs no other file to show:
// every image is a data: URI, and the only link is to the JSON beside it.
func checkSelfContained(t *testing.T, html string) {
	t.Helper()
	imgs := regexp.MustCompile(`<img [^>]*src="([^"]*)"`).FindAllStringSubmatch(html, -1)
	if len(imgs) == 0 {
		t.Error("report has no images")
	}
	for _, m := range imgs {
		if !strings.HasPrefix(m[1], "data:image/png;base64,") {
			t.Errorf("report shows an image from %.60q, want it embedded as a data: URI", m[1])
		}
	}
	for _, m := range regexp.MustCompile(`(?:src|href)="([^"]*)"`).FindAllStringSubmatch(html, -1) {
		if ref := m[1]; !strings.HasPrefix(ref, "data:") && ref != JSONFile {
			t.Errorf("report refers to %q, want nothing outside it but %s", ref, JSONFile)
		}
	}
	for _, bad := range []string{"http://", "https://", "<link ", "<script", "url("} {
		if strings.Contains(html, bad) {
			t.Errorf("report contains %q: it must be self-contained", bad)
		}
	}
}

// checkPNG decodes a PNG and checks its size and that it is a picture: many
// non-background pixels and, exactly, each of the colours in want.
func checkPNG(t *testing.T, path string, w, h int, want ...color.RGBA) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if b := img.Bounds(); b.Dx() != w || b.Dy() != h {
		t.Errorf("%s: %dx%d, want %dx%d", path, b.Dx(), b.Dy(), w, h)
	}
	seen := map[color.RGBA]int{}
	bg := 0
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			c := color.RGBAModel.Convert(img.At(x, y)).(color.RGBA)
			seen[c]++
			if c == (color.RGBA{255, 255, 255, 255}) || c.A == 0 {
				bg++
			}
		}
	}
	total := b.Dx() * b.Dy()
	if fg := total - bg; fg < total/50 {
		t.Errorf("%s: %d of %d pixels drawn: blank?", path, fg, total)
	}
	if len(seen) < 8 {
		t.Errorf("%s: %d distinct colours, want at least 8", path, len(seen))
	}
	for _, c := range want {
		if seen[c] < 10 {
			t.Errorf("%s: colour %v in %d pixels, want at least 10", path, c, seen[c])
		}
	}
}

func checkSVG(t *testing.T, path string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := xml.NewDecoder(bytes.NewReader(data))
	root, elems := "", 0
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s: not XML: %v", path, err)
		}
		if se, ok := tok.(xml.StartElement); ok {
			if root == "" {
				root = se.Name.Local
			}
			elems++
		}
	}
	if root != "svg" || elems < 20 {
		t.Errorf("%s: root <%s> with %d elements, want an <svg> drawing", path, root, elems)
	}
}

func TestWriteReport(t *testing.T) {
	rep := sweep(t)
	dir := filepath.Join(t.TempDir(), "out")
	path, err := WriteReport(rep, dir, Options{Timeline: 12})
	if err != nil {
		t.Fatal(err)
	}
	if path != filepath.Join(dir, ReportFile) {
		t.Errorf("report at %s", path)
	}
	stage := func(i int, light bool) color.RGBA {
		if light {
			return lighten(palette(i), 0.6)
		}
		return palette(i)
	}
	want := map[string][]color.RGBA{
		"latency":             {palette(0), palette(1), palette(2)},
		"stages":              {stage(0, false), stage(1, false), stage(1, true), grey()},
		"throughput":          {palette(0), palette(1), palette(2), boundGrey()},
		"efficiency":          {palette(0), palette(1), palette(2)},
		"timeline-p4_1-1-1-1": {stage(0, false), stage(1, false), stage(1, true), stage(3, false)},
		"timeline-p4_1-4-1-1": {stage(0, false), stage(1, false), stage(3, false)},
		"timeline-p4_1-2-1-1": {stage(1, false)},
	}
	for name, colours := range want {
		checkPNG(t, filepath.Join(dir, name+".png"), 768, 480, colours...)
		checkSVG(t, filepath.Join(dir, name+".svg"))
	}

	html, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	checkSelfContained(t, string(html))
	for name := range want {
		if !strings.Contains(string(html), `<figure id="`+name+`">`) {
			t.Errorf("report does not show %s", name)
		}
	}
	if !strings.Contains(string(html), `href="`+JSONFile+`"`) {
		t.Errorf("report does not link %s", JSONFile)
	}
	for _, s := range []string{"<table>", "p4 1-4-1-1", "S2*", "bottleneck"} {
		if !strings.Contains(string(html), s) {
			t.Errorf("report lacks %q", s)
		}
	}
	js, err := os.ReadFile(filepath.Join(dir, JSONFile))
	if err != nil {
		t.Fatal(err)
	}
	var back analysis.Report
	if err := json.Unmarshal(js, &back); err != nil || len(back.Runs) != 3 {
		t.Errorf("%s: %v, %d runs", JSONFile, err, len(back.Runs))
	}
}

func TestChartSize(t *testing.T) {
	rep := sweep(t)
	ch, err := Latency(rep)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := ch.Save(dir, 4*vg.Inch, 3*vg.Inch); err != nil {
		t.Fatal(err)
	}
	checkPNG(t, filepath.Join(dir, "latency.png"), 384, 288, palette(0))
}

func TestTimelineNeedsMessages(t *testing.T) {
	tr := simulate([]time.Duration{time.Millisecond}, []int{1}, 3, 1)
	for i := range tr.Messages {
		tr.Messages[i].Received, tr.Messages[i].Stages = 0, nil
	}
	r, err := analysis.AnalyzeTrace(tr, analysis.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Timeline(r, 10); err == nil {
		t.Error("timeline of a run with no completed messages: no error")
	}
}

// TestMixedVariants draws configurations that are not a sweep: points
// without joining lines, and an open-loop run among them.
func TestMixedVariants(t *testing.T) {
	ds := []time.Duration{time.Millisecond, 2 * time.Millisecond}
	a, b := simulate(ds, []int{1, 1}, 60, 4), simulate(ds, []int{1, 2}, 60, 8)
	b.Meta.Variant, b.Meta.Window, b.Meta.Rate = "p3", 0, 900
	rep, err := analysis.Analyze([]*trace.Trace{a, b}, analysis.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ch, err := Throughput(rep)
	if err != nil {
		t.Fatal(err)
	}
	if ch.Title != "Throughput by configuration" {
		t.Errorf("title %q", ch.Title)
	}
	dir := t.TempDir()
	if err := ch.Save(dir, 6*vg.Inch, 4*vg.Inch); err != nil {
		t.Fatal(err)
	}
	checkPNG(t, filepath.Join(dir, "throughput.png"), 576, 384, palette(0), palette(1), boundGrey())
	checkSVG(t, filepath.Join(dir, "throughput.svg"))
}

// TestTransports checks the transport comparison: runs of one variant over
// two transports are labelled by transport, and their efficiency and p99
// get a chart each, with a series per transport; a report over one
// transport has neither chart.
func TestTransports(t *testing.T) {
	ds := []time.Duration{time.Millisecond, 4 * time.Millisecond, time.Millisecond, time.Millisecond}
	var trs []*trace.Trace
	for _, tr := range []string{"core", "js"} {
		for _, alloc := range [][]int{{1, 1, 1, 1}, {1, 4, 1, 1}} {
			x := simulate(ds, alloc, 200, 16)
			x.Meta.Transport = tr
			trs = append(trs, x)
		}
	}
	k := simulate(ds, []int{1, 1, 1, 1}, 200, 16)
	k.Meta.Transport, k.Meta.Broker = "kafka", "kfake"
	trs = append(trs, k)
	rep, err := analysis.Analyze(trs, analysis.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var labels []string
	for _, r := range rep.Runs {
		labels = append(labels, r.Label)
	}
	want := []string{"p4 core 1-1-1-1", "p4 core 1-4-1-1", "p4 js 1-1-1-1", "p4 js 1-4-1-1", "p4 kafka@kfake 1-1-1-1"}
	if strings.Join(labels, "|") != strings.Join(want, "|") {
		t.Errorf("labels %q, want %q", labels, want)
	}
	chs, err := Charts(rep, Options{})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	found := 0
	for _, ch := range chs {
		if ch.Name != "transports-efficiency" && ch.Name != "transports-p99" {
			continue
		}
		found++
		if ch.entries < 3 {
			t.Errorf("%s: %d legend entries, want one per transport (3)", ch.Name, ch.entries)
		}
		if err := ch.Save(dir, 6*vg.Inch, 4*vg.Inch); err != nil {
			t.Fatal(err)
		}
		checkPNG(t, filepath.Join(dir, ch.Name+".png"), 576, 384, palette(0), palette(1), palette(2))
	}
	if found != 2 {
		t.Errorf("%d transport charts, want 2", found)
	}
	one, err := Charts(sweep(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, ch := range one {
		if strings.HasPrefix(ch.Name, "transports") {
			t.Errorf("one transport: chart %s, want none", ch.Name)
		}
	}
}
