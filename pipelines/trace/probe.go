package trace

import (
	"fmt"
	"os"
)

// ProbeDir makes sure traces can be written into dir before a run starts,
// so an unwritable directory is found before the run rather than after it:
// it creates dir (and its parents) as Write would, then creates and removes
// a temporary file in it. The error names the directory and carries the
// operating system's.
func ProbeDir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("trace directory %s: %w", dir, err)
	}
	f, err := os.CreateTemp(dir, ".natspipe-probe-*")
	if err != nil {
		return fmt.Errorf("trace directory %s: not writable: %w", dir, err)
	}
	name := f.Name()
	cerr := f.Close()
	rerr := os.Remove(name)
	if cerr != nil {
		return fmt.Errorf("trace directory %s: %w", dir, cerr)
	}
	if rerr != nil {
		return fmt.Errorf("trace directory %s: remove probe file: %w", dir, rerr)
	}
	return nil
}
