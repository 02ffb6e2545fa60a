package main

import (
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/natspipe/natspipe/internal/natstest"
)

// runServerVersion prints the version of the NATS server benchmarks use: the
// one at NATS_URL (or -url), else the embedded nats-server this build links.
func runServerVersion(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("server-version", flag.ContinueOnError)
	fs.SetOutput(stderr)
	url := fs.String("url", os.Getenv("NATS_URL"), "NATS server to ask (default: NATS_URL, else the embedded server)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	srv, err := natstest.New(*url)
	if err != nil {
		fmt.Fprintf(stderr, "natspipe server-version: %v\n", err)
		return 1
	}
	defer srv.Close()
	kind := "embedded"
	if srv.External {
		kind = "external"
	}
	fmt.Fprintf(stdout, "%s (%s)\n", srv.Version, kind)
	return 0
}
