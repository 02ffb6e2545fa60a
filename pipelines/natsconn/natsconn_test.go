package natsconn_test

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/natspipe/natspipe/pipelines/natsconn"
)

// envOf is a getenv over kv pairs.
func envOf(kv ...string) func(string) string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) string { return m[k] }
}

func TestMask(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"nats://127.0.0.1:4222", "nats://127.0.0.1:4222"},
		{"nats://u:SECRET@h:4222", "nats://u:***@h:4222"},
		{"nats://TOKEN@h:4222", "nats://***@h:4222"},
		{"u:SECRET@h:4222", "u:***@h:4222"},
		{"tls://u:p%40ss@h:1,nats://T@h2:2, nats://h3", "tls://u:***@h:1,nats://***@h2:2, nats://h3"},
		{"nats://u:pa@ss/w#rd@h:1", "nats://u:***@h:1"}, // unparsable: still masked
		{"", ""},
	} {
		if got := natsconn.Mask(c.in); got != c.want {
			t.Errorf("Mask(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestStringMasksSecrets(t *testing.T) {
	c := natsconn.Config{URL: "nats://u:SECRET1@h:1,nats://TOKEN2@h:2", User: "bob", Password: "SECRET3", Token: "TOKEN4", Creds: "/x/a.creds"}
	for _, s := range []string{c.String(), fmt.Sprintf("%v %+v %#v %s", c, c, c, c)} {
		for _, secret := range []string{"SECRET1", "TOKEN2", "SECRET3", "TOKEN4"} {
			if strings.Contains(s, secret) {
				t.Errorf("%q shows %s", s, secret)
			}
		}
		if !strings.Contains(s, "/x/a.creds") || !strings.Contains(s, "u:***@h:1") {
			t.Errorf("%q: want the creds file and the masked URL", s)
		}
	}
}

// A URL nats.go cannot parse comes back in clear inside url.Error: the
// error Connect returns must not carry it.
func TestConnectErrorRedacted(t *testing.T) {
	for _, u := range []string{"nats://u:SEC RET@127.0.0.1:1", "nats://TOK EN@127.0.0.1:1", "nats://u:SECRET@127.0.0.1:1", "nats://u:SECRET@ho st:1"} {
		nc, err := natsconn.Config{URL: u}.Connect("test")
		if err == nil {
			nc.Close()
			t.Fatalf("%s: connected", natsconn.Mask(u))
		}
		for _, s := range []string{"SEC RET", "TOK EN", "SECRET"} {
			if strings.Contains(err.Error(), s) {
				t.Errorf("error %q shows the secret", err)
			}
		}
		t.Logf("%v", err)
	}
	_, err := natsconn.Config{URL: "nats://u:SECRET@127.0.0.1:1"}.Connect("test")
	if !errors.Is(err, nats.ErrNoServers) {
		t.Errorf("redacted error %v: errors.Is(ErrNoServers) lost", err)
	}
}

func TestRedactError(t *testing.T) {
	c := natsconn.Config{URL: "nats://u:p%2Fw@h:1", Password: "PW", Token: "TK"}
	err := c.RedactError(fmt.Errorf("parse %q: bad; token TK; pw PW; raw p/w: %w", c.URL, nats.ErrAuthorization))
	if s := err.Error(); strings.Contains(s, "PW") || strings.Contains(s, "TK") || strings.Contains(s, "p%2Fw") || strings.Contains(s, "p/w") {
		t.Errorf("not redacted: %q", s)
	}
	if !errors.Is(err, nats.ErrAuthorization) {
		t.Errorf("errors.Is lost")
	}
	if errors.Unwrap(err) != nil {
		t.Errorf("a redacted error unwraps to the clear text")
	}
}

// touch writes a file under dir and returns its path.
func touch(t *testing.T, dir, name string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte("CONTENT-NEVER-SHOWN"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// Flags override the environment, which overrides the context.
func TestPrecedence(t *testing.T) {
	dir := t.TempDir()
	envCreds, flagCreds, ctxCA := touch(t, dir, "env.creds"), touch(t, dir, "flag.creds"), touch(t, dir, "ctx.ca")
	writeContext(t, dir, "dev", fmt.Sprintf(`{"url":"nats://ctx:1","creds":"/nope.creds","ca":%q,"user":"cu","password":"CTXPW"}`, ctxCA))
	getenv := envOf("XDG_CONFIG_HOME", dir, natsconn.EnvURL, "nats://env:1", natsconn.EnvCreds, envCreds, natsconn.EnvContext, "dev")

	c := natsconn.FromEnv(getenv)
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	c.RegisterFlags(fs, "")
	if err := fs.Parse([]string{"-creds", flagCreds}); err != nil {
		t.Fatal(err)
	}
	c, err := c.Resolve(getenv)
	if err != nil {
		t.Fatal(err)
	}
	if c.URL != "nats://env:1" || c.Creds != flagCreds || c.CA != ctxCA || c.User != "cu" || c.Password != "CTXPW" || c.Context != "dev" {
		t.Errorf("resolved %#v: want URL from env, creds from the flag, CA and user from the context", c)
	}
	// The child environment reproduces the same settings.
	child := map[string]string{"XDG_CONFIG_HOME": dir}
	for _, kv := range c.Environ() {
		k, v, _ := strings.Cut(kv, "=")
		child[k] = v
	}
	again, err := natsconn.Load(func(k string) string { return child[k] })
	if err != nil || again != c {
		t.Errorf("child resolves %v, %v; want %v", again, err, c)
	}
}

func TestUsageShowsNoSecret(t *testing.T) {
	c := natsconn.FromEnv(envOf(natsconn.EnvURL, "nats://u:SECRET@h:1"))
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	var out bytes.Buffer
	fs.SetOutput(&out)
	c.RegisterFlags(fs, "")
	fs.PrintDefaults()
	if strings.Contains(out.String(), "SECRET") || !strings.Contains(out.String(), "u:***@h:1") {
		t.Errorf("usage:\n%s", out.String())
	}
}

func TestValidate(t *testing.T) {
	dir := t.TempDir()
	ok := touch(t, dir, "ok")
	for _, c := range []struct {
		cfg  natsconn.Config
		want []string
	}{
		{natsconn.Config{Creds: filepath.Join(dir, "missing.creds")}, []string{"-creds", "NATS_CREDS", "missing.creds", "no such file"}},
		{natsconn.Config{NKey: dir}, []string{"-nkey", dir, "directory"}},
		{natsconn.Config{CA: filepath.Join(dir, "ca.pem")}, []string{"-tlsca", "ca.pem"}},
		{natsconn.Config{Cert: ok}, []string{"-tlscert", "-tlskey", "both"}},
		{natsconn.Config{Cert: ok, Key: filepath.Join(dir, "k.pem")}, []string{"-tlskey", "k.pem"}},
		{natsconn.Config{Creds: ok, NKey: ok}, []string{"-creds", "-nkey", "one"}},
		{natsconn.Config{URL: "http://u:SECRET@h:1"}, []string{"-url", "scheme", "u:***@h:1"}},
		{natsconn.Config{URL: "nats://u:SEC RET@h:1"}, []string{"-url", "u:***@h:1"}},
		{natsconn.Config{Password: "SECRET"}, []string{"NATS_PASSWORD", "NATS_USER"}},
	} {
		err := c.cfg.Validate()
		if err == nil {
			t.Errorf("%v: valid", c.cfg)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%v: error %q does not say %q", c.cfg, err, w)
			}
		}
		if strings.Contains(err.Error(), "SECRET") || strings.Contains(err.Error(), "SEC RET") || strings.Contains(err.Error(), "CONTENT") {
			t.Errorf("error %q shows a secret or a file's contents", err)
		}
	}
	if err := (natsconn.Config{URL: "nats://a:1, b:2", Creds: ok, CA: ok, Cert: ok, Key: ok}).Validate(); err != nil {
		t.Errorf("valid config: %v", err)
	}
}

// writeContext writes <dir>/nats/context/<name>.json.
func writeContext(t *testing.T, dir, name, body string) {
	t.Helper()
	d := filepath.Join(dir, "nats", "context")
	if err := os.MkdirAll(d, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(d, name+".json"), []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestReadContext(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", dir)
	creds := touch(t, dir, "u.creds")
	// As `nats context save prod --server ... --creds ...` writes it.
	writeContext(t, dir, "prod", fmt.Sprintf(`{
  "description": "production",
  "url": "tls://a:4222,tls://b:4222",
  "token": "",
  "user": "",
  "password": "",
  "creds": "file://%s",
  "nkey": "",
  "cert": "",
  "key": "",
  "ca": "",
  "nsc": "",
  "jetstream_domain": "",
  "jetstream_api_prefix": "",
  "jetstream_event_prefix": "",
  "inbox_prefix": "",
  "user_jwt": "",
  "color_scheme": "",
  "tls_first": true
}`, creds))
	writeContext(t, dir, "tok", `{"url":"nats://h:1","token":"S3CR3T-TOKEN"}`)
	writeContext(t, dir, "jwt", `{"url":"nats://h:1","user_jwt":"eyJ..."}`)
	writeContext(t, dir, "op", `{"url":"nats://h:1","creds":"op://vault/item"}`)
	writeContext(t, dir, "bad", `{"url":`)

	c, err := natsconn.ReadContext("prod", nil) // nil: the process environment, XDG_CONFIG_HOME set above
	if err != nil {
		t.Fatal(err)
	}
	if c.URL != "tls://a:4222,tls://b:4222" || c.Creds != creds || !c.TLSFirst || c.Description != "production" {
		t.Errorf("prod: %#v", c)
	}

	// No context selected yet, then "." is the selected one.
	if _, err := natsconn.ReadContext(".", nil); err == nil || !strings.Contains(err.Error(), "no context is selected") {
		t.Errorf("nothing selected: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "nats", "context.txt"), []byte("tok\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := natsconn.Config{Context: "."}.Resolve(nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Context != "tok" || cfg.Token != "S3CR3T-TOKEN" || cfg.URL != "nats://h:1" {
		t.Errorf("selected: %v", cfg)
	}
	if strings.Contains(fmt.Sprintf("%v %#v", cfg, cfg), "S3CR3T") {
		t.Errorf("printing the config shows the token")
	}

	for name, want := range map[string]string{
		"jwt":     `"user_jwt" is not supported`,
		"op":      "op:// reference",
		"bad":     "not a context file",
		"missing": "missing.json",
		"../etc":  "plain name",
	} {
		_, err := natsconn.ReadContext(name, nil)
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "-context") {
			t.Errorf("context %s: error %v, want one with -context and %q", name, err, want)
		}
	}

	// Without XDG_CONFIG_HOME: ~/.config/nats.
	home := t.TempDir()
	writeContext(t, filepath.Join(home, ".config"), "h", `{"url":"nats://home:1"}`)
	c, err = natsconn.ReadContext("h", envOf("HOME", home))
	if err != nil || c.URL != "nats://home:1" {
		t.Errorf("context in HOME: %v, %v", c, err)
	}
}
