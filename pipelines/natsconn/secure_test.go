package natsconn_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"

	"github.com/natspipe/natspipe/internal/benchkit"
	"github.com/natspipe/natspipe/internal/natstest"
	"github.com/natspipe/natspipe/internal/syncbuf"
	"github.com/natspipe/natspipe/pipelines"
	"github.com/natspipe/natspipe/pipelines/bus"
	"github.com/natspipe/natspipe/pipelines/fleet"
	"github.com/natspipe/natspipe/pipelines/natsconn"
	"github.com/natspipe/natspipe/pipelines/p3"
	"github.com/natspipe/natspipe/pipelines/worker"
)

func TestMain(m *testing.M) {
	worker.Dispatch() // the test binary doubles as the worker process
	os.Exit(benchkit.Main(m))
}

// twoStages is a short pipeline: two worker processes for P3.
func twoStages() pipelines.Spec {
	return pipelines.Spec{Durations: []time.Duration{time.Millisecond, time.Millisecond}, Work: pipelines.Sleep, PayloadSize: 16}
}

// roundTrip starts a P3 fleet whose worker processes connect with conn
// (given to them through their environment), attaches the harness with
// conn, and passes 20 messages through every stage. It returns what the
// workers wrote to stderr.
func roundTrip(t *testing.T, conn natsconn.Config) string {
	t.Helper()
	// Every record a worker writes, its ready line with the URL and one a
	// message, is checked for the secret: the workers (which inherit the
	// environment) log at debug.
	t.Setenv(worker.EnvLogLevel, "debug")
	launcher, err := fleet.Self()
	if err != nil {
		t.Fatal(err)
	}
	spec := twoStages()
	r, err := pipelines.NewRunner(pipelines.RunConfig{Spec: spec, Variant: "p3", Bound: p3.Bound(spec, worker.Sync, 0), Timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	var stderr syncbuf.Buffer
	subjects := bus.NewSubjects()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p, err := p3.Start(ctx, p3.Options{NATS: conn, Subjects: subjects, Launcher: launcher, Stderr: &stderr}, spec, r)
	if err != nil {
		t.Fatalf("start p3 with %v: %v\nworkers:\n%s", conn, err, stderr.String())
	}
	benchkit.Cleanup(t, "p3", p)
	ep := benchkit.Attach(t, conn, subjects, r)
	res, err := r.Run(ctx, ep, 20)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	if res.Completed != 20 {
		t.Fatalf("completed %d of 20: %s", res.Completed, res.Summary())
	}
	return stderr.String()
}

// refused checks that conn cannot connect, quickly, with an error that
// says why (want) and shows none of secrets; it returns the error.
func refused(t *testing.T, conn natsconn.Config, want string, secrets ...string) error {
	t.Helper()
	begin := time.Now()
	nc, err := bus.Connect(conn, "wrong", nil)
	took := time.Since(begin)
	if err == nil {
		nc.Close()
		t.Fatalf("%v: connected", conn)
	}
	t.Logf("refused in %v: %v", took.Round(time.Millisecond), err)
	if took > 5*time.Second {
		t.Errorf("refused after %v, want within 5s", took)
	}
	if !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not say %q", err, want)
	}
	noSecret(t, "error", err.Error(), secrets...)
	return err
}

func noSecret(t *testing.T, what, text string, secrets ...string) {
	t.Helper()
	for _, s := range secrets {
		if s != "" && strings.Contains(text, s) {
			t.Errorf("%s shows the secret %q:\n%s", what, s, text)
		}
	}
}

// workerRefused runs a worker process with env (the connection settings)
// and checks that it exits with ExitError, saying want and no secret.
func workerRefused(t *testing.T, env []string, want string, secrets ...string) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, exe, "-stage", "S1", "-durations", "1ms")
	cmd.Env = append(append(os.Environ(), worker.EnvChild+"=1"), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != worker.ExitError {
		t.Fatalf("worker: %v, want exit status %d\n%s", err, worker.ExitError, out.String())
	}
	t.Logf("worker process: %s", strings.TrimSpace(out.String()))
	if !strings.Contains(out.String(), want) {
		t.Errorf("worker output does not say %q:\n%s", want, out.String())
	}
	noSecret(t, "worker output", out.String(), secrets...)
}

func TestUserPassword(t *testing.T) {
	benchkit.CheckLeaks(t)
	const user, password = "natspipe", "PASSWORD-s3cr3t"
	srv := natstest.StartWith(t, func(o *server.Options) { o.Username, o.Password = user, password })
	host := strings.TrimPrefix(srv.URL, "nats://")

	out := roundTrip(t, natsconn.Config{URL: "nats://" + user + ":" + password + "@" + host})
	noSecret(t, "worker output", out, password)
	if !strings.Contains(out, "natspipe:***@") {
		t.Errorf("workers' ready lines do not show the masked URL:\n%s", out)
	}
	// User and password given apart (NATS_USER, NATS_PASSWORD or a context).
	roundTrip(t, natsconn.Config{URL: srv.URL, User: user, Password: password})

	const wrong = "WRONG-pa55word"
	refused(t, natsconn.Config{URL: "nats://" + user + ":" + wrong + "@" + host}, "Authorization Violation", wrong, password)
	refused(t, natsconn.Config{URL: srv.URL, User: user, Password: wrong}, "Authorization Violation", wrong, password)
	workerRefused(t, []string{natsconn.EnvURL + "=nats://" + user + ":" + wrong + "@" + host}, "Authorization Violation", wrong)
}

func TestToken(t *testing.T) {
	benchkit.CheckLeaks(t)
	const token = "TOKEN-0123456789abcdef"
	srv := natstest.StartWith(t, func(o *server.Options) { o.Authorization = token })
	host := strings.TrimPrefix(srv.URL, "nats://")

	out := roundTrip(t, natsconn.Config{URL: "nats://" + token + "@" + host})
	noSecret(t, "worker output", out, token)
	if !strings.Contains(out, "nats://***@") {
		t.Errorf("workers' ready lines do not show the masked token URL:\n%s", out)
	}
	roundTrip(t, natsconn.Config{URL: srv.URL, Token: token})

	const wrong = "WRONG-TOKEN-fedcba"
	refused(t, natsconn.Config{URL: "nats://" + wrong + "@" + host}, "Authorization Violation", wrong, token)
	refused(t, natsconn.Config{URL: srv.URL, Token: wrong}, "Authorization Violation", wrong, token)
	workerRefused(t, []string{natsconn.EnvURL + "=" + srv.URL, natsconn.EnvToken + "=" + wrong}, "Authorization Violation", wrong)
}

// seedFile makes an nkey user, writes its seed to a file and returns the
// file and the public key.
func seedFile(t *testing.T, dir, name string) (path, seed, public string) {
	t.Helper()
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	s, _ := kp.Seed()
	pub, _ := kp.PublicKey()
	path = filepath.Join(dir, name)
	if err := os.WriteFile(path, s, 0o600); err != nil {
		t.Fatal(err)
	}
	return path, string(s), pub
}

func TestNKey(t *testing.T) {
	benchkit.CheckLeaks(t)
	dir := t.TempDir()
	good, goodSeed, pub := seedFile(t, dir, "user.nk")
	other, otherSeed, _ := seedFile(t, dir, "other.nk")
	srv := natstest.StartWith(t, func(o *server.Options) { o.Nkeys = []*server.NkeyUser{{Nkey: pub}} })

	out := roundTrip(t, natsconn.Config{URL: srv.URL, NKey: good})
	noSecret(t, "worker output", out, goodSeed)

	refused(t, natsconn.Config{URL: srv.URL, NKey: other}, "Authorization Violation", otherSeed, goodSeed)
	refused(t, natsconn.Config{URL: srv.URL}, "Authorization Violation")
	workerRefused(t, []string{natsconn.EnvURL + "=" + srv.URL, natsconn.EnvNKey + "=" + other}, "Authorization Violation", otherSeed)
	// A file that is not a seed: a clear error naming the flag, not its contents.
	notSeed := filepath.Join(dir, "not-a-seed")
	if err := os.WriteFile(notSeed, []byte("SUAXXXX-NOT-A-SEED"), 0o600); err != nil {
		t.Fatal(err)
	}
	err := refused(t, natsconn.Config{URL: srv.URL, NKey: notSeed}, "-nkey", "SUAXXXX")
	if !strings.Contains(err.Error(), notSeed) {
		t.Errorf("error %q does not name the file", err)
	}
}

// pki is a test CA with a server and a client certificate, as PEM files.
type pki struct {
	CA, ServerCert, ServerKey, ClientCert, ClientKey string
	pool                                             *x509.CertPool
	server                                           tls.Certificate
}

func newPKI(t *testing.T, dir, prefix string) *pki {
	t.Helper()
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, prefix+name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	newKey := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	serial := int64(1)
	template := func(cn string) *x509.Certificate {
		serial++
		return &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		}
	}
	caKey := newKey()
	caT := template(prefix + "natspipe test CA")
	caT.IsCA, caT.BasicConstraintsValid = true, true
	caT.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature
	caDER, err := x509.CreateCertificate(rand.Reader, caT, caT, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	leaf := func(name string, usage x509.ExtKeyUsage) (certPath, keyPath string, cert tls.Certificate) {
		k := newKey()
		lt := template(name)
		lt.KeyUsage = x509.KeyUsageDigitalSignature
		lt.ExtKeyUsage = []x509.ExtKeyUsage{usage}
		lt.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
		lt.DNSNames = []string{"localhost"}
		der, err := x509.CreateCertificate(rand.Reader, lt, caCert, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kder, err := x509.MarshalECPrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		certPath, keyPath = write(name+"-cert.pem", "CERTIFICATE", der), write(name+"-key.pem", "EC PRIVATE KEY", kder)
		cert, err = tls.LoadX509KeyPair(certPath, keyPath)
		if err != nil {
			t.Fatal(err)
		}
		return certPath, keyPath, cert
	}
	p := &pki{CA: write("ca.pem", "CERTIFICATE", caDER), pool: x509.NewCertPool()}
	p.pool.AddCert(caCert)
	p.ServerCert, p.ServerKey, p.server = leaf("server", x509.ExtKeyUsageServerAuth)
	p.ClientCert, p.ClientKey, _ = leaf("client", x509.ExtKeyUsageClientAuth)
	return p
}

// tlsServer configures o for TLS with p's server certificate, and with
// verify, for client certificates signed by p's CA.
func (p *pki) tlsServer(verify bool) func(*server.Options) {
	return func(o *server.Options) {
		cfg := &tls.Config{Certificates: []tls.Certificate{p.server}, MinVersion: tls.VersionTLS12}
		if verify {
			cfg.ClientAuth, cfg.ClientCAs = tls.RequireAndVerifyClientCert, p.pool
		}
		o.TLS, o.TLSVerify, o.TLSConfig, o.TLSTimeout = true, verify, cfg, 2
	}
}

func TestTLS(t *testing.T) {
	benchkit.CheckLeaks(t)
	dir := t.TempDir()
	ca, other := newPKI(t, dir, "a-"), newPKI(t, dir, "b-")
	srv := natstest.StartWith(t, ca.tlsServer(false))
	if !strings.HasPrefix(srv.URL, "tls://") {
		t.Fatalf("TLS server URL %s", srv.URL)
	}
	roundTrip(t, natsconn.Config{URL: srv.URL, CA: ca.CA})
	// A nats:// URL upgrades to TLS when the server requires it.
	roundTrip(t, natsconn.Config{URL: "nats://" + strings.TrimPrefix(srv.URL, "tls://"), CA: ca.CA})

	refused(t, natsconn.Config{URL: srv.URL, CA: other.CA}, "certificate")
	refused(t, natsconn.Config{URL: srv.URL}, "certificate") // system roots do not know the test CA
	workerRefused(t, []string{natsconn.EnvURL + "=" + srv.URL, natsconn.EnvCA + "=" + other.CA}, "certificate")
}

func TestTLSClientCertificate(t *testing.T) {
	benchkit.CheckLeaks(t)
	dir := t.TempDir()
	ca, other := newPKI(t, dir, "a-"), newPKI(t, dir, "b-")
	srv := natstest.StartWith(t, ca.tlsServer(true))
	roundTrip(t, natsconn.Config{URL: srv.URL, CA: ca.CA, Cert: ca.ClientCert, Key: ca.ClientKey})

	keyPEM, err := os.ReadFile(other.ClientKey)
	if err != nil {
		t.Fatal(err)
	}
	keyBody := strings.Split(string(keyPEM), "\n")[1] // a line of the key, never to be printed
	// No client certificate, then one from another CA: the server refuses.
	refused(t, natsconn.Config{URL: srv.URL, CA: ca.CA}, "tls")
	refused(t, natsconn.Config{URL: srv.URL, CA: ca.CA, Cert: other.ClientCert, Key: other.ClientKey}, "tls", keyBody)
	workerRefused(t, []string{natsconn.EnvURL + "=" + srv.URL, natsconn.EnvCA + "=" + ca.CA,
		natsconn.EnvCert + "=" + other.ClientCert, natsconn.EnvKey + "=" + other.ClientKey}, "tls", keyBody)
}

// Worker processes get the URL through their environment: a password in it
// must not be on their command lines, which every user can read.
func TestWorkerCommandLinesHoldNoPassword(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc/PID/cmdline")
	}
	benchkit.CheckLeaks(t)
	const user, password = "natspipe", "CMDLINE-PASSWORD-42"
	srv := natstest.StartWith(t, func(o *server.Options) { o.Username, o.Password = user, password })
	conn := natsconn.Config{URL: "nats://" + user + ":" + password + "@" + strings.TrimPrefix(srv.URL, "nats://")}
	launcher, err := fleet.Self()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var stderr syncbuf.Buffer
	f, err := fleet.Start(ctx, fleet.Config{
		Processes: fleet.Processes{NATS: conn, Subjects: bus.NewSubjects(), Launcher: launcher, Stderr: &stderr},
		Spec:      twoStages(), Alloc: []int{1, 2}, Variant: "p4",
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	benchkit.Cleanup(t, "fleet", f)
	for _, id := range f.Workers() {
		pid := f.PID(id.Name)
		cmdline, err := os.ReadFile("/proc/" + itoa(pid) + "/cmdline")
		if err != nil {
			t.Fatalf("worker %s: %v", id.Name, err)
		}
		args := strings.ReplaceAll(string(cmdline), "\x00", " ")
		t.Logf("worker %s (pid %d): %s", id.Name, pid, args)
		noSecret(t, "command line of "+id.Name, args, password)
		if strings.Contains(args, "-url") {
			t.Errorf("worker %s gets -url on its command line: %s", id.Name, args)
		}
		// The settings went through the environment, readable only by the same user.
		environ, err := os.ReadFile("/proc/" + itoa(pid) + "/environ")
		if err != nil {
			t.Fatalf("worker %s: %v", id.Name, err)
		}
		if !strings.Contains(string(environ), natsconn.EnvURL+"="+conn.URL+"\x00") {
			t.Errorf("worker %s: NATS_URL not in its environment", id.Name)
		}
	}
	noSecret(t, "worker output", stderr.String(), password)
}

func itoa(n int) string { return big.NewInt(int64(n)).String() }
