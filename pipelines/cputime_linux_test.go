package pipelines

import (
	"context"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func processCPU(t *testing.T) time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func TestCPUWorkHoldsCPU(t *testing.T) {
	// Process CPU time must grow by at least the work's duration.
	before := processCPU(t)
	if err := DoWork(context.Background(), CPU, 20*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if used := processCPU(t) - before; used < 20*time.Millisecond {
		t.Errorf("cpu work of 20ms used %v of CPU", used)
	}
}
