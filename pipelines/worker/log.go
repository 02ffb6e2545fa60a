package worker

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
)

// Environment variables of a worker's logging, read by ParseArgs as the
// defaults of -log-level and -log-format.
const (
	// EnvLogLevel is the worker's log level: debug, info, warn or error.
	EnvLogLevel = "NATSPIPE_LOG_LEVEL"
	// EnvLogFormat is the worker's log format: text or json.
	EnvLogFormat = "NATSPIPE_LOG_FORMAT"
)

// Logging defaults: a healthy worker prints nothing; what goes wrong
// (rejected messages, NATS errors, a stop from outside) prints at warn and
// error. What each level carries:
//
//	debug  one record per message handed on: msg=handled with its
//	       correlation ID (cid), seq, wait in the worker and service time
//	info   the worker's life: ready (its input, mode, next subject),
//	       stop requested, set the run up, stopped (its counts)
//	warn   incidents the run survives: a rejected message, a NATS async
//	       error or disconnect, a reconnect, a stop by signal
//	error  what fails the worker or loses a message: a failed publish or
//	       settlement, a failed drain, the error it exits with
//
// Every record carries pipeline (the subject prefix), stage and worker.
const (
	DefaultLogLevel  = slog.LevelWarn // -log-level's default
	DefaultLogFormat = "text"         // -log-format's default
)

// ParseLogLevel reads a log level: debug, info, warn (or warning) or error,
// in any case.
func ParseLogLevel(s string) (slog.Level, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "debug":
		return slog.LevelDebug, nil
	case "info":
		return slog.LevelInfo, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("log level %q: want debug, info, warn or error", s)
}

// ParseLogFormat reads a log format: text (slog's key=value lines) or json
// (one JSON object a line).
func ParseLogFormat(s string) (string, error) {
	switch f := strings.ToLower(strings.TrimSpace(s)); f {
	case "text", "json":
		return f, nil
	}
	return "", fmt.Errorf("log format %q: want text or json", s)
}

// NewLogger returns a logger writing records of level and above to w in
// format (text or json; anything else is text).
func NewLogger(w io.Writer, format string, level slog.Leveler) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// discard is the logger of a worker configured without one.
func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }
