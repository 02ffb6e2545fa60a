// Package natsconn holds how natspipe connects to NATS: the server URL and
// the credentials and TLS files of a secured deployment, taken from flags,
// the environment and the NATS CLI's contexts with NATS's own conventions,
// turned into nats.go options, passed to child processes through their
// environment (never their command line), and printed with every secret
// masked.
//
// Precedence: a flag overrides the environment, which overrides the
// context. The variables are the NATS CLI's:
//
//	NATS_URL       server URL or comma-separated list (may hold user:password@ or token@)
//	NATS_USER      user name           (no flag: flags are visible on command lines)
//	NATS_PASSWORD  password            (no flag)
//	NATS_TOKEN     authentication token (no flag)
//	NATS_CREDS     credentials file (JWT and nkey seed)      -creds
//	NATS_NKEY      nkey seed file                              -nkey
//	NATS_CA        TLS CA certificates file                    -tlsca
//	NATS_CERT      TLS client certificate file                 -tlscert
//	NATS_KEY       TLS client key file                         -tlskey
//	NATS_CONTEXT   NATS CLI context name ("." for the selected) -context
//
// and natspipe's own:
//
//	NATSPIPE_NATS_ORDERED  1: connect to NATS_URL's servers in list order (Config.Ordered)
//
// A comma-separated NATS_URL is a seed list, as for nats.go: a client
// connects to one of its servers that answers (picked at random unless
// Ordered), learns the rest of the cluster from it, and on losing its
// server reconnects to another. Connect fails only when none answers, with
// every URL named (masked) in its error.
package natsconn

import (
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
)

// Environment variables, named as the NATS CLI names them.
const (
	EnvURL      = "NATS_URL"
	EnvUser     = "NATS_USER"
	EnvPassword = "NATS_PASSWORD"
	EnvToken    = "NATS_TOKEN"
	EnvCreds    = "NATS_CREDS"
	EnvNKey     = "NATS_NKEY"
	EnvCA       = "NATS_CA"
	EnvCert     = "NATS_CERT"
	EnvKey      = "NATS_KEY"
	EnvContext  = "NATS_CONTEXT"
	// EnvOrdered is natspipe's, not the NATS CLI's: "1" sets Ordered.
	EnvOrdered = "NATSPIPE_NATS_ORDERED"
)

// DefaultURL is the server a client connects to when nothing names one.
const DefaultURL = nats.DefaultURL

// ConnectTimeout bounds one connection attempt.
const ConnectTimeout = 5 * time.Second

// Masked replaces a secret wherever one would be printed.
const Masked = "***"

// Config is how to connect to NATS. Its String masks every secret; its
// fields hold them in clear, so print the Config, never its fields.
type Config struct {
	// URL is the server URL or a comma-separated list; it may carry
	// user:password@ or token@. "" means none was given.
	URL string
	// User and Password authenticate by user name (environment or context only).
	User, Password string
	// Token authenticates by token (environment or context only).
	Token string
	// Creds is a credentials file (user JWT and nkey seed).
	Creds string
	// NKey is an nkey seed file.
	NKey string
	// CA is a file of CA certificates the server's certificate must chain to.
	CA string
	// Cert and Key are the client's TLS certificate and key files.
	Cert, Key string
	// TLSFirst does the TLS handshake before the server's INFO (context only).
	TLSFirst bool
	// Context names the NATS CLI context the settings not given fill from;
	// "." is the context selected with `nats context select`.
	Context string
	// Ordered connects to URL's servers in list order (nats.DontRandomize):
	// the first that answers, and on reconnect the next ones in turn. By
	// default nats.go picks them at random, which spreads clients over a
	// cluster's seeds; From(i) orders the list so that each client of a
	// fleet can be given a node of its own.
	Ordered bool
}

// FromEnv reads the NATS_* variables through getenv (nil: os.Getenv).
func FromEnv(getenv func(string) string) Config {
	if getenv == nil {
		getenv = os.Getenv
	}
	return Config{
		URL:      getenv(EnvURL),
		User:     getenv(EnvUser),
		Password: getenv(EnvPassword),
		Token:    getenv(EnvToken),
		Creds:    getenv(EnvCreds),
		NKey:     getenv(EnvNKey),
		CA:       getenv(EnvCA),
		Cert:     getenv(EnvCert),
		Key:      getenv(EnvKey),
		Context:  getenv(EnvContext),
		Ordered:  getenv(EnvOrdered) == "1",
	}
}

// Load is FromEnv then Resolve: the settings the environment gives, with
// the context it names, checked.
func Load(getenv func(string) string) (Config, error) {
	return FromEnv(getenv).Resolve(getenv)
}

// urlValue is the -url flag: its default (from NATS_URL) is printed masked
// in usage output.
type urlValue struct{ p *string }

func (v urlValue) String() string {
	if v.p == nil {
		return ""
	}
	return Mask(*v.p)
}

func (v urlValue) Set(s string) error { *v.p = s; return nil }

// RegisterFlags defines -url, -creds, -nkey, -tlsca, -tlscert, -tlskey and
// -context on fs, defaulting to c's current values (so call it on FromEnv's
// result: flags then override the environment). There is deliberately no
// flag for a password or a token: command lines are visible to every user.
func (c *Config) RegisterFlags(fs *flag.FlagSet, urlUsage string) {
	if urlUsage == "" {
		urlUsage = "NATS server URL or comma-separated list (default $NATS_URL)"
	}
	fs.Var(urlValue{&c.URL}, "url", urlUsage+"; prefer NATS_URL for a `URL` with a password: flags are visible in ps")
	fs.StringVar(&c.Creds, "creds", c.Creds, "NATS credentials file (default $NATS_CREDS)")
	fs.StringVar(&c.NKey, "nkey", c.NKey, "NATS nkey seed file (default $NATS_NKEY)")
	fs.StringVar(&c.CA, "tlsca", c.CA, "TLS CA certificates file (default $NATS_CA)")
	fs.StringVar(&c.Cert, "tlscert", c.Cert, "TLS client certificate file (default $NATS_CERT)")
	fs.StringVar(&c.Key, "tlskey", c.Key, "TLS client key file (default $NATS_KEY)")
	fs.StringVar(&c.Context, "context", c.Context, `NATS CLI context to take the settings not given from; "." for the selected one (default $NATS_CONTEXT)`)
}

// Resolve fills the settings c lacks from the context c names (looked up
// with getenv, nil: os.Getenv, for XDG_CONFIG_HOME and HOME), expands ~ and
// $VAR in file names, makes them absolute, and checks the result with
// Validate.
func (c Config) Resolve(getenv func(string) string) (Config, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	if c.Context != "" {
		ctx, err := ReadContext(c.Context, getenv)
		if err != nil {
			return c, err
		}
		c.Context = ctx.Name
		fill := func(dst *string, v string) {
			if *dst == "" {
				*dst = v
			}
		}
		fill(&c.URL, ctx.URL)
		fill(&c.User, ctx.User)
		fill(&c.Password, ctx.Password)
		fill(&c.Token, ctx.Token)
		fill(&c.Creds, ctx.Creds)
		fill(&c.NKey, ctx.NKey)
		fill(&c.CA, ctx.CA)
		fill(&c.Cert, ctx.Cert)
		fill(&c.Key, ctx.Key)
		c.TLSFirst = c.TLSFirst || ctx.TLSFirst
	}
	for _, p := range []*string{&c.Creds, &c.NKey, &c.CA, &c.Cert, &c.Key} {
		*p = expandPath(*p, getenv)
	}
	if err := c.Validate(); err != nil {
		return c, err
	}
	return c, nil
}

// expandPath expands $VAR and a leading ~ and makes p absolute, so a child
// process started elsewhere finds the same file.
func expandPath(p string, getenv func(string) string) string {
	if p == "" {
		return ""
	}
	p = os.Expand(p, getenv)
	if p == "~" || strings.HasPrefix(p, "~/") {
		if home := homeDir(getenv); home != "" {
			p = filepath.Join(home, p[1:])
		}
	}
	if abs, err := filepath.Abs(p); err == nil {
		p = abs
	}
	return p
}

// Validate checks the URL's syntax and that every file named can be opened
// (it reads none of them). Its errors name the flag, the variable and the
// path, never a file's contents or a secret.
func (c Config) Validate() error {
	if c.URL != "" {
		if err := checkURL(c.URL); err != nil {
			return fmt.Errorf("-url (%s): %w", EnvURL, err)
		}
	}
	if c.Creds != "" && c.NKey != "" {
		return fmt.Errorf("-creds (%s) and -nkey (%s): give one", EnvCreds, EnvNKey)
	}
	if c.Password != "" && c.User == "" {
		return fmt.Errorf("%s is set without %s", EnvPassword, EnvUser)
	}
	if (c.Cert == "") != (c.Key == "") {
		return fmt.Errorf("-tlscert (%s) and -tlskey (%s): give both or neither", EnvCert, EnvKey)
	}
	for _, f := range []struct{ flag, env, path string }{
		{"-creds", EnvCreds, c.Creds},
		{"-nkey", EnvNKey, c.NKey},
		{"-tlsca", EnvCA, c.CA},
		{"-tlscert", EnvCert, c.Cert},
		{"-tlskey", EnvKey, c.Key},
	} {
		if f.path == "" {
			continue
		}
		if err := readable(f.path); err != nil {
			return fmt.Errorf("%s (%s) %s: %w", f.flag, f.env, f.path, err)
		}
	}
	return nil
}

// readable opens path for reading and closes it, reading nothing.
func readable(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return unwrapPath(err)
	}
	if fi.IsDir() {
		return errors.New("is a directory, want a file")
	}
	f, err := os.Open(path)
	if err != nil {
		return unwrapPath(err)
	}
	return f.Close()
}

// unwrapPath drops the path an *os.PathError repeats.
func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// checkURL rejects URLs nats.go could never connect to. Its errors show the
// URL masked.
func checkURL(raw string) error {
	for _, u := range strings.Split(raw, ",") {
		u = strings.TrimSpace(u)
		if u == "" {
			return fmt.Errorf("url %q: empty server in list", Mask(raw))
		}
		if !strings.Contains(u, "://") {
			u = "nats://" + u
		}
		p, err := url.Parse(u)
		if err != nil {
			// url.Error repeats the URL in clear: say only what is wrong.
			var ue *url.Error
			if errors.As(err, &ue) {
				err = ue.Err
			}
			return fmt.Errorf("url %q: %v", Mask(raw), err)
		}
		switch p.Scheme {
		case "nats", "tls", "ws", "wss":
		default:
			return fmt.Errorf("url %q: scheme %q: want nats, tls, ws or wss", Mask(raw), p.Scheme)
		}
		if p.Hostname() == "" {
			return fmt.Errorf("url %q: no host", Mask(raw))
		}
	}
	return nil
}

// Servers splits URL into its servers (nil when URL is empty).
func (c Config) Servers() []string {
	if c.URL == "" {
		return nil
	}
	list := strings.Split(c.URL, ",")
	for i := range list {
		list[i] = strings.TrimSpace(list[i])
	}
	return list
}

// From returns c with its seed list rotated to start at server i (modulo
// their number) and Ordered set: a client connects to server i while it
// answers and fails over to i+1, i+2, ... Giving the clients of a fleet
// successive i spreads them over a cluster's nodes, deterministically, so
// that messages between them cross routes.
func (c Config) From(i int) Config {
	list := c.Servers()
	if n := len(list); n > 1 {
		i = ((i % n) + n) % n
		c.URL = strings.Join(append(list[i:len(list):len(list)], list[:i]...), ",")
	}
	c.Ordered = true
	return c
}

// ServerURL is the URL to dial: URL, or DefaultURL when none was given.
func (c Config) ServerURL() string {
	if c.URL == "" {
		return DefaultURL
	}
	return c.URL
}

// Options are the nats.go options for c's authentication and TLS.
func (c Config) Options() ([]nats.Option, error) {
	var opts []nats.Option
	if c.User != "" {
		opts = append(opts, nats.UserInfo(c.User, c.Password))
	}
	if c.Token != "" {
		opts = append(opts, nats.Token(c.Token))
	}
	if c.Creds != "" {
		opts = append(opts, nats.UserCredentials(c.Creds))
	}
	if c.NKey != "" {
		o, err := nats.NkeyOptionFromSeed(c.NKey)
		if err != nil {
			return nil, fmt.Errorf("-nkey (%s) %s: %w", EnvNKey, c.NKey, c.RedactError(err))
		}
		opts = append(opts, o)
	}
	if c.Cert != "" && c.Key != "" {
		opts = append(opts, nats.ClientCert(c.Cert, c.Key))
	}
	if c.CA != "" {
		opts = append(opts, nats.RootCAs(c.CA))
	}
	if c.TLSFirst {
		opts = append(opts, nats.TLSHandshakeFirst())
	}
	if c.Ordered {
		opts = append(opts, nats.DontRandomize())
	}
	return opts, nil
}

// ReconnectWait is how long a connection that lost its server waits
// between attempts to reconnect (plus up to ReconnectJitter): a server
// restart costs a run about that long. nats.go's default is 2 s.
const (
	ReconnectWait   = 500 * time.Millisecond
	ReconnectJitter = 250 * time.Millisecond
)

// Connect connects to c's server as name, bounded by ConnectTimeout, with
// no retry (a lost connection is retried every ReconnectWait), and with
// opts added after c's own. Its error describes c
// (String: secrets masked) and has every secret of c scrubbed, whatever
// nats.go put in it.
func (c Config) Connect(name string, opts ...nats.Option) (*nats.Conn, error) {
	own, err := c.Options()
	if err != nil {
		return nil, fmt.Errorf("connect %s to %s: %w", name, Mask(c.ServerURL()), err)
	}
	all := append([]nats.Option{
		nats.Name(name),
		nats.Timeout(ConnectTimeout),
		nats.RetryOnFailedConnect(false),
		nats.ReconnectWait(ReconnectWait),
		nats.ReconnectJitter(ReconnectJitter, ReconnectJitter),
	}, own...)
	nc, err := nats.Connect(c.ServerURL(), append(all, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("connect %s to %s: %w", name, c, c.RedactError(err))
	}
	return nc, nil
}

// Environ is the environment that gives a child process these settings,
// every variable set (empty when unset) so none is inherited from the
// parent behind the settings' back. Append it after the parent's
// environment: os/exec keeps the last value of a variable.
func (c Config) Environ() []string {
	return []string{
		EnvURL + "=" + c.URL,
		EnvUser + "=" + c.User,
		EnvPassword + "=" + c.Password,
		EnvToken + "=" + c.Token,
		EnvCreds + "=" + c.Creds,
		EnvNKey + "=" + c.NKey,
		EnvCA + "=" + c.CA,
		EnvCert + "=" + c.Cert,
		EnvKey + "=" + c.Key,
		EnvContext + "=" + c.Context,
		EnvOrdered + "=" + ordered(c.Ordered),
	}
}

func ordered(b bool) string {
	if b {
		return "1"
	}
	return ""
}

// String describes c with every secret masked: the URL's user info, the
// password and the token. File names are shown.
func (c Config) String() string {
	parts := []string{Mask(c.ServerURL())}
	if c.Context != "" {
		parts = append(parts, "context "+c.Context)
	}
	if c.User != "" {
		parts = append(parts, "user "+c.User)
	}
	if c.Password != "" {
		parts = append(parts, "password "+Masked)
	}
	if c.Token != "" {
		parts = append(parts, "token "+Masked)
	}
	for _, f := range []struct{ what, path string }{
		{"creds", c.Creds}, {"nkey", c.NKey}, {"tls ca", c.CA}, {"tls cert", c.Cert}, {"tls key", c.Key},
	} {
		if f.path != "" {
			parts = append(parts, f.what+" "+f.path)
		}
	}
	if c.TLSFirst {
		parts = append(parts, "tls first")
	}
	if c.Ordered {
		parts = append(parts, "in order")
	}
	return strings.Join(parts, ", ")
}

// GoString masks secrets in %#v too.
func (c Config) GoString() string { return "natsconn.Config{" + c.String() + "}" }

// Mask returns a URL or comma-separated URL list with the user info of each
// masked: nats://u:***@host for a user and password, nats://***@host for a
// token. Anything before the last @ of a server is treated as user info,
// so even a URL that does not parse is masked.
func Mask(urls string) string {
	if !strings.Contains(urls, "@") {
		return urls
	}
	list := strings.Split(urls, ",")
	for i, u := range list {
		start, at, ok := userInfo(u)
		if !ok {
			continue
		}
		info := u[start:at]
		masked := Masked
		if k := strings.IndexByte(info, ':'); k >= 0 {
			masked = info[:k] + ":" + Masked
		}
		list[i] = u[:start] + masked + u[at:]
	}
	return strings.Join(list, ",")
}

// userInfo finds the user info of one server URL, u[start:at], by the last
// @ after the scheme, so that even a URL that does not parse is covered.
func userInfo(u string) (start, at int, ok bool) {
	if j := strings.Index(u, "://"); j >= 0 {
		start = j + 3
	}
	at = strings.LastIndexByte(u, '@')
	return start, at, at >= start
}

// secrets are the strings of c that must never be printed: the password,
// the token and the secret part of each URL's user info, raw and unescaped.
func (c Config) secrets() []string {
	var s []string
	add := func(v string) {
		if len(v) >= 1 {
			s = append(s, v)
			if u, err := url.PathUnescape(v); err == nil && u != v {
				s = append(s, u)
			}
			if u, err := url.QueryUnescape(v); err == nil && u != v {
				s = append(s, u)
			}
		}
	}
	add(c.Password)
	add(c.Token)
	for _, u := range strings.Split(c.URL, ",") {
		start, at, ok := userInfo(u)
		if !ok {
			continue
		}
		info := u[start:at]
		if k := strings.IndexByte(info, ':'); k >= 0 {
			info = info[k+1:]
		}
		add(info)
	}
	return s
}

// Redact returns s with c's URLs masked and every secret of c replaced by
// Masked.
func (c Config) Redact(s string) string {
	if c.URL != "" {
		for _, u := range strings.Split(c.URL, ",") {
			if u = strings.TrimSpace(u); u != "" {
				s = strings.ReplaceAll(s, u, Mask(u))
			}
		}
	}
	for _, secret := range c.secrets() {
		s = strings.ReplaceAll(s, secret, Masked)
	}
	return s
}

// RedactError returns err with its text redacted (see Redact). When that
// changes the text, the result keeps errors.Is against err's chain but does
// not unwrap to it, so the clear text cannot be reached by unwrapping.
func (c Config) RedactError(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	if red := c.Redact(msg); red != msg {
		return &redacted{msg: red, orig: err}
	}
	return err
}

type redacted struct {
	msg  string
	orig error
}

func (e *redacted) Error() string { return e.msg }

// Is reports whether the original error matches target.
func (e *redacted) Is(target error) bool { return errors.Is(e.orig, target) }
