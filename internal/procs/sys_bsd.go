//go:build unix && !linux

package procs

import (
	"os/exec"
	"syscall"
)

// setProcAttr puts the child in a process group of its own. There is no
// Pdeathsig here: Spec.Lifeline is what ends a child whose parent died.
func setProcAttr(cmd *exec.Cmd) { cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} }

// waitExited returns at once: without waitid(WNOWAIT) the group is killed
// after the child is reaped.
func waitExited(int) {}

func groupExists(pgid int) bool { return exists(-pgid) }
