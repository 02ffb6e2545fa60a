package worker

import (
	"fmt"

	"github.com/natspipe/natspipe/pipelines"
)

// Environment variables of P3's and P4's tests and benchmarks, beside
// pipelines'.
const (
	// EnvMode is the worker mode of a default run, "sync" or "async"; set
	// for benchmarks, it replaces their sweep of modes.
	EnvMode = "NATSPIPE_MODE"
	// EnvConcurrency is an async worker's messages in stage work at once.
	EnvConcurrency = pipelines.EnvConcurrency
)

// ModeFromEnv reads NATSPIPE_MODE, def when unset.
func ModeFromEnv(getenv pipelines.Getenv, def Mode) (Mode, error) {
	if v := getenv(EnvMode); v != "" {
		m, err := ParseMode(v)
		if err != nil {
			return "", fmt.Errorf("%s=%q: %w", EnvMode, v, err)
		}
		return m, nil
	}
	return def, nil
}
