//go:build unix

package procs

import "syscall"

// signalGroup sends sig to process group pgid.
func signalGroup(pgid int, sig syscall.Signal) error { return syscall.Kill(-pgid, sig) }

// exists reports whether kill(pid, 0) finds a process (a negative pid
// names a process group).
func exists(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || err == syscall.EPERM
}
