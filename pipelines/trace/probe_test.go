package trace

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestProbeDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b")
	if err := ProbeDir(dir); err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil || len(ents) != 0 {
		t.Errorf("after the probe %s holds %v (%v), want it empty", dir, ents, err)
	}
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	err = ProbeDir(filepath.Join(file, "x"))
	if err == nil || !strings.Contains(err.Error(), "trace directory "+filepath.Join(file, "x")) || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("probe under a file: %v", err)
	}
	if os.Geteuid() != 0 { // root writes anywhere
		ro := t.TempDir()
		if err := os.Chmod(ro, 0o555); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = os.Chmod(ro, 0o755) })
		if err := ProbeDir(ro); err == nil || !strings.Contains(err.Error(), "not writable") {
			t.Errorf("read-only directory: %v", err)
		}
	}
}
