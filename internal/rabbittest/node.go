package rabbittest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Bounds of a node's life.
const (
	// ReadyTimeout bounds a node's start: until an AMQP connection opens
	// a channel.
	ReadyTimeout = 60 * time.Second
	// StopTimeout bounds a graceful stop (SIGTERM); past it the node is
	// killed.
	StopTimeout = 10 * time.Second
	// logLines is how much of the node's log an error shows.
	logLines = 20
)

// Node is a private RabbitMQ node: its own directory, ports, Erlang node
// name and epmd, none shared with any other broker on the machine.
type Node struct {
	// URL is the node's AMQP URL, user guest on 127.0.0.1.
	URL string
	// Dir is the node's temporary directory (data, logs, configuration),
	// removed by Stop.
	Dir string
	// Name is the node's Erlang name, natspipe-<random>@localhost.
	Name string
	// Port is the AMQP port.
	Port int

	rabbit *exec.Cmd // beam.smp: the script execs into it
	env    []string  // the node's environment, for rabbitmqctl
	ctl    string    // rabbitmqctl
	epmd   *exec.Cmd
	log    *os.File
	epLog  *os.File
	// spawn starts the node's processes from one OS thread that lives as
	// long as they do: Linux sends Pdeathsig when the thread that forked a
	// child ends, not the process, and Go ends a thread whose goroutine
	// exits locked to it (stage work does: pipelines.spinFor), which would
	// kill a node started from it in the middle of the test binary.
	spawn *spawner
}

// spawner runs exec.Cmd.Start on a goroutine locked to its OS thread
// until close (as internal/procs.Group does for worker processes).
type spawner struct {
	req  chan *spawnReq
	done chan struct{}
}

type spawnReq struct {
	cmd *exec.Cmd
	err chan error
}

func newSpawner() *spawner {
	s := &spawner{req: make(chan *spawnReq), done: make(chan struct{})}
	go s.run()
	return s
}

// run is the spawner's goroutine: never unlocked, so its thread ends with
// it, after close, when the node's processes have been reaped.
func (s *spawner) run() {
	runtime.LockOSThread()
	defer close(s.done)
	for r := range s.req {
		r.err <- r.cmd.Start()
	}
}

// start starts cmd from the spawner's thread.
func (s *spawner) start(cmd *exec.Cmd) error {
	r := &spawnReq{cmd: cmd, err: make(chan error, 1)}
	s.req <- r
	return <-r.err
}

// close ends the spawner's goroutine and thread.
func (s *spawner) close() {
	close(s.req)
	<-s.done
}

// SpawnerFunc is the spawner goroutine's function, for goroutine leak
// checks to ignore: a shared node's spawner lives until the binary's end.
const SpawnerFunc = "github.com/natspipe/natspipe/internal/rabbittest.(*spawner).run"

// options say how to start a node.
type options struct {
	program string // rabbitmq-server
	epmd    string
	// conf is added to rabbitmq.conf.
	conf  string
	ready time.Duration
	// root is where the node's directory is made; "": os.TempDir.
	root string
}

func defaultOptions() options {
	return options{program: Program(), epmd: epmdProgram(), ready: ReadyTimeout, root: DataRoot()}
}

// DataRoot is where nodes keep their directories: /dev/shm (tmpfs) when
// the machine has one, else the temporary directory. RabbitMQ confirms a
// persistent message only once it is fsynced; on tmpfs that costs
// nothing, as JetStream's file store, which does not fsync each message,
// costs nothing for it either, so the transports compare on their
// protocols, not on the disk (on this project's VMs a confirm takes about
// 0.5 ms on tmpfs and 1.2 ms on disk).
func DataRoot() string {
	const shm = "/dev/shm"
	if fi, err := os.Stat(shm); err == nil && fi.IsDir() && unix.Access(shm, unix.W_OK) == nil {
		return shm
	}
	return os.TempDir()
}

// epmdProgram finds epmd: Erlang's own, else epmd in PATH.
func epmdProgram() string {
	if m, _ := filepath.Glob("/usr/lib/erlang/erts-*/bin/epmd"); len(m) > 0 {
		return m[len(m)-1]
	}
	if p, err := exec.LookPath("epmd"); err == nil {
		return p
	}
	return "epmd"
}

// Pids are the node's processes: the broker's (beam.smp) and its epmd's.
func (n *Node) Pids() (rabbit, epmd int) { return n.rabbit.Process.Pid, n.epmd.Process.Pid }

// Ctl runs rabbitmqctl against the node (e.g. "close_all_connections",
// "set_vm_memory_high_watermark"), within ctx, and returns its output.
// It takes a second or two: rabbitmqctl starts an Erlang VM of its own.
func (n *Node) Ctl(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, n.ctl, append([]string{"-n", n.Name}, args...)...)
	cmd.Env = n.env
	cmd.Dir = n.Dir
	cmd.SysProcAttr = childAttr()
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 2 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("rabbittest: rabbitmqctl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// LogTail is the last lines of the node's log.
func (n *Node) LogTail() string { return tail(filepath.Join(n.Dir, "rabbit.log"), logLines) }

// start starts a node as o says and waits until it takes AMQP connections.
// On failure everything it started is stopped and removed, and the error
// holds the last lines of the node's log.
func start(o options) (n *Node, err error) {
	if o.program == "" {
		return nil, errors.New(Unavailable)
	}
	if o.ready <= 0 {
		o.ready = ReadyTimeout
	}
	sweep(o.root)
	dir, err := os.MkdirTemp(o.root, dirPrefix)
	if err != nil {
		return nil, fmt.Errorf("rabbittest: %w", err)
	}
	n = &Node{Dir: dir, spawn: newSpawner()}
	if err := os.WriteFile(filepath.Join(dir, ownerFile), []byte(strconv.Itoa(os.Getpid())), 0o600); err != nil {
		return n, fmt.Errorf("rabbittest: %w", err)
	}
	defer func() {
		if err != nil {
			logTail := n.LogTail()
			if stopErr := n.Stop(); stopErr != nil {
				err = errors.Join(err, stopErr)
			}
			err = fmt.Errorf("%w\nlast lines of its log:\n%s", err, logTail)
			n = nil
		}
	}()
	ports, err := freePorts(3)
	if err != nil {
		return n, err
	}
	n.Port = ports[0]
	distPort, epmdPort := ports[1], ports[2]
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	n.Name = "natspipe-" + hex.EncodeToString(rnd[:]) + "@localhost"
	n.URL = fmt.Sprintf("amqp://guest:guest@127.0.0.1:%d/", n.Port)

	conf := fmt.Sprintf("listeners.tcp.default = 127.0.0.1:%d\nloopback_users = none\n%s", n.Port, o.conf)
	files := map[string]string{
		"rabbitmq.conf":     conf,
		"enabled_plugins":   "[].\n",
		"rabbitmq-env.conf": "",
		"advanced.config":   "[].\n",
		"erl_inetrc":        "{lookup, [file, native]}.\n{host, {127,0,0,1}, [\"localhost\"]}.\n",
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			return n, fmt.Errorf("rabbittest: %w", err)
		}
	}
	if n.log, err = os.Create(filepath.Join(dir, "rabbit.log")); err != nil {
		return n, fmt.Errorf("rabbittest: %w", err)
	}
	if n.epLog, err = os.Create(filepath.Join(dir, "epmd.log")); err != nil {
		return n, fmt.Errorf("rabbittest: %w", err)
	}

	// Our own epmd, in the foreground: the node registers with it rather
	// than starting an epmd daemon that would outlive it.
	n.epmd = exec.Command(o.epmd, "-port", strconv.Itoa(epmdPort), "-address", "127.0.0.1")
	n.epmd.Stdout, n.epmd.Stderr = n.epLog, n.epLog
	n.epmd.Env = append(baseEnv(), "HOME="+dir)
	n.epmd.SysProcAttr = childAttr()
	if err := n.spawn.start(n.epmd); err != nil {
		n.epmd = nil
		return n, fmt.Errorf("rabbittest: start epmd: %w", err)
	}
	if err := waitListening(n.epmd, epmdPort, 10*time.Second); err != nil {
		return n, fmt.Errorf("rabbittest: epmd on port %d: %w (%s)", epmdPort, err, tail(n.epLog.Name(), 5))
	}

	// RABBITMQ_ALLOW_INPUT makes the script exec into the VM (one process
	// to signal, and Pdeathsig reaches it); -noinput keeps the VM off the
	// shell that variable would otherwise start.
	n.rabbit = exec.Command(o.program, "-noinput")
	n.rabbit.Dir = dir
	n.rabbit.Stdout, n.rabbit.Stderr = n.log, n.log
	n.ctl = filepath.Join(filepath.Dir(o.program), "rabbitmqctl")
	n.env = append(baseEnv(),
		"HOME="+dir, // the Erlang cookie
		"RABBITMQ_NODENAME="+n.Name,
		"RABBITMQ_NODE_IP_ADDRESS=127.0.0.1",
		"RABBITMQ_NODE_PORT="+strconv.Itoa(n.Port),
		"RABBITMQ_DIST_PORT="+strconv.Itoa(distPort),
		"ERL_EPMD_PORT="+strconv.Itoa(epmdPort),
		"ERL_EPMD_ADDRESS=127.0.0.1",
		"RABBITMQ_MNESIA_BASE="+filepath.Join(dir, "mnesia"),
		"RABBITMQ_LOG_BASE="+filepath.Join(dir, "log"),
		"RABBITMQ_PID_FILE="+filepath.Join(dir, "rabbit.pid"),
		"RABBITMQ_CONFIG_FILE="+filepath.Join(dir, "rabbitmq.conf"),
		"RABBITMQ_ENABLED_PLUGINS_FILE="+filepath.Join(dir, "enabled_plugins"),
		"RABBITMQ_CONF_ENV_FILE="+filepath.Join(dir, "rabbitmq-env.conf"),
		"RABBITMQ_ADVANCED_CONFIG_FILE="+filepath.Join(dir, "advanced.config"),
		"RABBITMQ_LOGS=-",
		"ERL_INETRC="+filepath.Join(dir, "erl_inetrc"),
		"RABBITMQ_ALLOW_INPUT=1",
		// Distribution only on loopback.
		"RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=-kernel inet_dist_use_interface {127,0,0,1}",
	)
	n.rabbit.Env = n.env
	n.rabbit.SysProcAttr = childAttr()
	if err := n.spawn.start(n.rabbit); err != nil {
		n.rabbit = nil
		return n, fmt.Errorf("rabbittest: start %s: %w", o.program, err)
	}
	if err := n.waitReady(o.ready); err != nil {
		return n, err
	}
	return n, nil
}

// A node's directory is dirPrefix + random, under DataRoot, and holds
// ownerFile, the pid of the process that started it.
const (
	dirPrefix = "natspipe-rabbit-"
	ownerFile = "owner.pid"
)

// sweep removes the directories of nodes whose owner died without
// stopping them (a test binary killed: Pdeathsig ended the node, but its
// directory, on tmpfs in memory, stays).
func sweep(root string) {
	if root == "" {
		root = os.TempDir()
	}
	entries, err := os.ReadDir(root)
	if err != nil {
		return
	}
	for _, e := range entries {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), dirPrefix) {
			continue
		}
		dir := filepath.Join(root, e.Name())
		b, err := os.ReadFile(filepath.Join(dir, ownerFile))
		if err != nil {
			continue // not ours, or being made
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid <= 0 {
			continue
		}
		if errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) {
			_ = os.RemoveAll(dir)
		}
	}
}

// baseEnv is the process environment without what would point a node at
// another broker's files or ports.
func baseEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "RABBITMQ_") || strings.HasPrefix(k, "ERL_") || k == "HOME" || k == "NOTIFY_SOCKET" {
			continue
		}
		env = append(env, kv)
	}
	return env
}

// childAttr puts a child in a process group of its own (Stop kills the
// group: the VM's helpers too) and kills it when the test binary dies.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// waitReady waits until the node opens an AMQP channel, within timeout;
// an exit of the node or its epmd ends the wait at once.
func (n *Node) waitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last error
	for {
		if exited(n.rabbit.Process.Pid) {
			return fmt.Errorf("rabbittest: node %s exited while starting: %s", n.Name, waitStatus(n.rabbit))
		}
		if exited(n.epmd.Process.Pid) {
			return fmt.Errorf("rabbittest: epmd of node %s exited: %s", n.Name, waitStatus(n.epmd))
		}
		if last = Check(n.URL, time.Second); last == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("rabbittest: node %s not ready after %v: %w", n.Name, timeout, last)
		}
		time.Sleep(100 * time.Millisecond) // polling a port: no event to wait on
	}
}

// waitListening waits until cmd accepts TCP connections on port, or exits.
func waitListening(cmd *exec.Cmd, port int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	for {
		if exited(cmd.Process.Pid) {
			return fmt.Errorf("exited: %s", waitStatus(cmd))
		}
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			_ = c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not listening after %v: %w", timeout, err)
		}
		time.Sleep(20 * time.Millisecond) // polling a port: no event to wait on
	}
}

// exited reports whether process pid (a child not yet reaped) has ended:
// it is a zombie, or gone.
func exited(pid int) bool {
	state, ok := procState(pid)
	return !ok || state == 'Z' || state == 'X'
}

// procState is the state letter of process pid in /proc; false if there
// is no such process.
func procState(pid int) (byte, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false
	}
	// pid (comm) state ...; comm may hold spaces and parentheses.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 || i+2 >= len(b) {
		return 0, false
	}
	return b[i+2], true
}

// Group lists the live (not zombie) processes of process group pgid.
func Group(pgid int) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		// After ") ": state ppid pgrp ...
		f := strings.Fields(s[i+1:])
		if len(f) < 3 || f[0] == "Z" || f[0] == "X" {
			continue
		}
		if g, err := strconv.Atoi(f[2]); err == nil && g == pgid {
			pids = append(pids, pid)
		}
	}
	return pids
}

// waitStatus reaps cmd, which has exited, and says how it ended.
func waitStatus(cmd *exec.Cmd) string {
	if err := cmd.Wait(); err != nil {
		return err.Error()
	}
	return "exit status 0"
}

// Stop stops the node: SIGTERM to its process group, SIGKILL after
// StopTimeout, then its epmd; it reaps them, checks that no process of
// either group is left and removes the node's directory. Safe to call
// more than once.
func (n *Node) Stop() error {
	var errs []error
	if n.rabbit != nil {
		errs = append(errs, stopGroup(n.rabbit, syscall.SIGTERM, StopTimeout))
		n.rabbit = nil
	}
	if n.epmd != nil {
		errs = append(errs, stopGroup(n.epmd, syscall.SIGKILL, StopTimeout))
		n.epmd = nil
	}
	for _, f := range []*os.File{n.log, n.epLog} {
		if f != nil {
			_ = f.Close()
		}
	}
	n.log, n.epLog = nil, nil
	if n.spawn != nil {
		n.spawn.close() // after the processes are reaped
		n.spawn = nil
	}
	if n.Dir != "" {
		if err := os.RemoveAll(n.Dir); err != nil {
			errs = append(errs, fmt.Errorf("rabbittest: remove %s: %w", n.Dir, err))
		}
	}
	return errors.Join(errs...)
}

// stopGroup signals cmd's process group with sig, waits up to timeout for
// cmd to exit (then kills the group), reaps it, kills what is left of the
// group and waits, bounded, until none of it is alive.
func stopGroup(cmd *exec.Cmd, sig syscall.Signal, timeout time.Duration) error {
	pid := cmd.Process.Pid
	if cmd.ProcessState == nil { // not reaped yet
		_ = syscall.Kill(-pid, sig)
		waited := make(chan error, 1)
		go func() { waited <- cmd.Wait() }()
		t := time.NewTimer(timeout)
		select {
		case <-waited:
		case <-t.C:
			_ = syscall.Kill(-pid, syscall.SIGKILL)
			<-waited
		}
		t.Stop()
	}
	_ = syscall.Kill(-pid, syscall.SIGKILL) // the VM's helpers
	deadline := time.Now().Add(timeout)
	for {
		left := Group(pid)
		if len(left) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("rabbittest: processes %v of group %d still alive after %v", left, pid, timeout)
		}
		time.Sleep(20 * time.Millisecond) // no event for another process's end
	}
}

// freePorts returns k distinct free TCP ports on 127.0.0.1.
func freePorts(k int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			_ = l.Close()
		}
	}()
	ports := make([]int, 0, k)
	for range k {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("rabbittest: free port: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}
