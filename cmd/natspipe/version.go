package main

import (
	"flag"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"strings"
)

// Modules whose versions natspipe version prints beside its own.
const (
	natsServerModule = "github.com/nats-io/nats-server/v2"
	natsGoModule     = "github.com/nats-io/nats.go"
)

// versionHelp is natspipe version -h.
func versionHelp() help {
	return help{
		synopsis: "natspipe version",
		about: `Prints natspipe's module version from the build (the tag for go install
...@version, a pseudo-version for a build of a clone, "(devel)" when go
recorded no VCS information), the commit, its time and whether the tree had
changes (when go build recorded them: -buildvcs), the Go version and
platform, and the versions of the nats-server (the embedded server) and
nats.go modules it was built with. Also natspipe -version and --version.`,
		examples: []string{
			"natspipe version",
			"go build -buildvcs=true -o natspipe ./cmd/natspipe && ./natspipe version",
		},
	}
}

// runVersion is natspipe version.
func runVersion(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("version", flag.ContinueOnError)
	pos, code, done := parseCommand("version", fs, args, versionHelp(), stdout, stderr)
	if done {
		return code
	}
	if len(pos) > 0 {
		return usageExit(stderr, "version", fmt.Errorf("unexpected arguments %q: natspipe version takes none", pos))
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		bi = nil
	}
	fmt.Fprint(stdout, formatVersion(bi))
	return exitOK
}

// formatVersion is natspipe version's text for the build bi (nil: no
// build information, as in a binary built without module support):
//
//	natspipe v1.2.0 (commit 0123abcd, modified)
//	go go1.26.8 linux/amd64
//	nats-server v2.15.2
//	nats.go v1.55.0
func formatVersion(bi *debug.BuildInfo) string {
	var b strings.Builder
	if bi == nil {
		fmt.Fprintf(&b, "natspipe unknown (no build information)\ngo %s %s/%s\n", runtime.Version(), runtime.GOOS, runtime.GOARCH)
		return b.String()
	}
	version := bi.Main.Version
	if version == "" {
		version = "unknown"
	}
	settings := map[string]string{}
	for _, s := range bi.Settings {
		settings[s.Key] = s.Value
	}
	var vcs []string
	if rev := settings["vcs.revision"]; rev != "" {
		vcs = append(vcs, "commit "+rev)
	}
	if t := settings["vcs.time"]; t != "" {
		vcs = append(vcs, t)
	}
	if settings["vcs.modified"] == "true" {
		vcs = append(vcs, "modified")
	}
	fmt.Fprintf(&b, "natspipe %s", version)
	if len(vcs) > 0 {
		fmt.Fprintf(&b, " (%s)", strings.Join(vcs, ", "))
	}
	goVersion := bi.GoVersion
	if goVersion == "" {
		goVersion = runtime.Version()
	}
	fmt.Fprintf(&b, "\ngo %s %s/%s\n", goVersion, runtime.GOOS, runtime.GOARCH)
	for _, m := range []struct{ name, path string }{{"nats-server", natsServerModule}, {"nats.go", natsGoModule}} {
		fmt.Fprintf(&b, "%s %s\n", m.name, moduleVersion(bi, m.path))
	}
	return b.String()
}

// moduleVersion is the version of the module path that bi was built
// with (its replacement's, if replaced), "unknown" when it is not a
// dependency.
func moduleVersion(bi *debug.BuildInfo, path string) string {
	for _, d := range bi.Deps {
		if d.Path != path {
			continue
		}
		if r := d.Replace; r != nil {
			to := r.Version
			if to == "" {
				to = r.Path // a directory
			}
			return to + " (replacing " + d.Version + ")"
		}
		return d.Version
	}
	return "unknown"
}
