package main

import (
	"flag"
	"fmt"
	"io"

	"github.com/natspipe/natspipe/internal/natsserver"
	"github.com/natspipe/natspipe/pipelines/natsconn"
)

// serverVersionHelp is natspipe server-version -h.
func serverVersionHelp() help {
	return help{
		synopsis: "natspipe server-version [flags]",
		about: `Prints the version of the NATS server the benchmarks and natspipe run use:
the one NATS_URL (or a NATS_* setting, the NATS CLI context, or the flags,
which override them) names, "(external)", else the nats-server this build
embeds, "(embedded)". Exit status: 0 ok; 1 the server not reached; 2 a bad
flag or setting.`,
		examples: []string{
			"natspipe server-version",
			"natspipe server-version -url nats://demo.nats.io:4222",
			"NATS_CONTEXT=prod natspipe server-version",
		},
	}
}

// runServerVersion prints the version of the NATS server benchmarks use: the
// one the NATS_* settings or the connection flags name, else the embedded
// nats-server this build links.
func runServerVersion(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("server-version", flag.ContinueOnError)
	conn := natsconn.FromEnv(nil)
	conn.RegisterFlags(fs, "NATS server to ask (default: NATS_URL, else the embedded server)")
	pos, code, done := parseCommand("server-version", fs, args, serverVersionHelp(), stdout, stderr)
	if done {
		return code
	}
	if len(pos) > 0 {
		return usageExit(stderr, "server-version", fmt.Errorf("unexpected arguments %q: it takes flags only", pos))
	}
	conn, err := conn.Resolve(nil)
	if err != nil {
		return usageExit(stderr, "server-version", err)
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
