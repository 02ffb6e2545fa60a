package main

import (
	"flag"
	"fmt"
	"io"

	"github.com/natspipe/natspipe/internal/natsserver"
	"github.com/natspipe/natspipe/pipelines/natsconn"
)

// runServerVersion prints the version of the NATS server benchmarks use: the
// one the NATS_* settings or the connection flags name, else the embedded
// nats-server this build links.
func runServerVersion(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("server-version", flag.ContinueOnError)
	fs.SetOutput(stderr)
	conn := natsconn.FromEnv(nil)
	conn.RegisterFlags(fs, "NATS server to ask (default: NATS_URL, else the embedded server)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	conn, err := conn.Resolve(nil)
	if err != nil {
		fmt.Fprintf(stderr, "natspipe server-version: %v\n", err)
		return 2
	}
	srv, err := natsserver.Open(conn)
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
