//go:build !linux

package pipelines

import "time"

// threadCPUTime is not available here; CPU work falls back to wall time.
func threadCPUTime() (time.Duration, bool) { return 0, false }
