// Package procstest ties a procs.Group to a test: the group is closed in
// the test's Cleanup, and the test fails if any of its processes outlives
// it. It is for tests only; production code uses procs.NewGroup and Close.
package procstest

import (
	"testing"

	"github.com/natspipe/natspipe/internal/procs"
)

// NewGroup returns a group (see procs.NewGroup) closed in tb's Cleanup;
// after closing, the cleanup fails tb if any process of the group, or of
// its process groups, is still alive.
func NewGroup(tb testing.TB, onUnexpected func(*procs.Exit)) *procs.Group {
	tb.Helper()
	g := procs.NewGroup(onUnexpected)
	tb.Cleanup(func() {
		if err := g.Close(); err != nil {
			tb.Errorf("procs: %v", err)
		}
		if left := g.Leftovers(); len(left) > 0 {
			tb.Errorf("procs: processes still alive after cleanup: %v", left)
		}
	})
	return g
}
