//go:build !unix

package procs

import (
	"errors"
	"os"
	"os/exec"
	"syscall"
)

// setProcAttr does nothing: no process groups here; Spec.Lifeline is what
// ends a child whose parent died.
func setProcAttr(*exec.Cmd) {}

func waitExited(int) {}

// signalGroup can only kill the process itself here.
func signalGroup(pid int, sig syscall.Signal) error {
	p, err := os.FindProcess(pid)
	if err != nil {
		return syscall.ESRCH
	}
	if sig == syscall.SIGKILL {
		return p.Kill()
	}
	return errors.ErrUnsupported
}

func exists(pid int) bool {
	if pid < 0 {
		return false
	}
	p, err := os.FindProcess(pid)
	if err != nil {
		return false
	}
	_ = p.Release()
	return true
}

func groupExists(int) bool { return false }
