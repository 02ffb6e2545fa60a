package main

import (
	"flag"
	"os"
	"strconv"

	"github.com/natspipe/natspipe/pipelines"
	"github.com/natspipe/natspipe/pipelines/pipefile"
)

// registerFileFlags adds -f and its long form -pipeline to fs.
func registerFileFlags(fs *flag.FlagSet, file *string) {
	const usage = "pipeline file (YAML, see testdata/pipelines/seed.yaml); flags and environment variables override it"
	fs.StringVar(file, "f", "", usage)
	fs.StringVar(file, "pipeline", "", "the same as -f")
}

// flagEnv names the environment variable that sets a natspipe run flag's
// default, for the flags that have one: it overrides the pipeline file
// as the flag would.
var flagEnv = map[string]string{
	"durations": pipelines.EnvDurations,
	"work":      pipelines.EnvWork,
	"payload":   pipelines.EnvPayload,
}

// applyPipelineFile sets every option of o the pipeline file gives and
// neither a flag (set) nor its environment variable does.
func applyPipelineFile(o *runOptions, p *pipefile.Pipeline, set map[string]bool) {
	for name := range p.Given {
		if set[name] || (flagEnv[name] != "" && os.Getenv(flagEnv[name]) != "") {
			continue
		}
		switch name {
		case "durations":
			o.durations = p.Spec.TimesString()
		case "work":
			o.work = string(p.Spec.Work)
		case "payload":
			o.payload = p.Spec.PayloadSize
		case "seed":
			o.seed = p.Spec.Seed
		case "n":
			o.n = p.Messages
		case "variant":
			o.variant = p.Variant
		case "transport":
			o.transport = p.Transport
		case "alloc":
			o.alloc = p.Alloc.String()
		case "mode":
			o.mode = string(p.Mode)
		case "concurrency":
			o.concurrency = p.Concurrency
		case "inflight":
			o.inflight = p.Inflight
		case "window":
			o.window = p.Window
		case "rate":
			if !set["load"] {
				o.rate = p.Rate
			}
		case "load":
			if !set["rate"] {
				o.load = p.Load
			}
		case "arrivals":
			o.arrivals = string(p.Arrivals)
		}
	}
	if o.traceName == "" && o.traceDir != "" && p.Name != "" {
		o.traceName = p.Name + "-" + o.variant + "-" + strconv.Itoa(o.n)
	}
}
