package natsconn

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Context is a NATS CLI context: the settings `nats context save` writes to
// <config>/nats/context/NAME.json, where <config> is $XDG_CONFIG_HOME or
// ~/.config. The field names are the CLI's (those of
// github.com/nats-io/jsm.go/natscontext). natspipe reads the file itself
// rather than import natscontext: that package brings the whole jsm.go
// JetStream management library (expr-lang, go-humanize, x/net, a schema
// registry) and credential resolvers that run external programs, for the
// ten fields read here.
type Context struct {
	Name        string `json:"-"`
	Description string `json:"description"`
	URL         string `json:"url"`
	User        string `json:"user"`
	Password    string `json:"password"`
	Token       string `json:"token"`
	Creds       string `json:"creds"`
	NKey        string `json:"nkey"`
	Cert        string `json:"cert"`
	Key         string `json:"key"`
	CA          string `json:"ca"`
	TLSFirst    bool   `json:"tls_first"`

	// Settings natspipe does not support; a context that sets one is
	// refused rather than half-applied.
	NSC          string `json:"nsc"`
	SocksProxy   string `json:"socks_proxy"`
	UserJWT      string `json:"user_jwt"`
	UserSeed     string `json:"user_seed"`
	WinCertStore string `json:"windows_cert_store"`
}

// String describes the context with its secrets masked.
func (c Context) String() string {
	return Config{URL: c.URL, User: c.User, Password: c.Password, Token: c.Token, Creds: c.Creds,
		NKey: c.NKey, CA: c.CA, Cert: c.Cert, Key: c.Key, TLSFirst: c.TLSFirst, Context: c.Name}.String()
}

// GoString masks secrets in %#v too.
func (c Context) GoString() string { return "natsconn.Context{" + c.String() + "}" }

// ConfigDir is the NATS CLI's configuration directory: $XDG_CONFIG_HOME/nats,
// else ~/.config/nats.
func ConfigDir(getenv func(string) string) (string, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	if x := getenv("XDG_CONFIG_HOME"); x != "" {
		return filepath.Join(x, "nats"), nil
	}
	home := homeDir(getenv)
	if home == "" {
		return "", errors.New("nats contexts: no XDG_CONFIG_HOME and no home directory")
	}
	return filepath.Join(home, ".config", "nats"), nil
}

// homeDir is $HOME, else the user's home directory.
func homeDir(getenv func(string) string) string {
	if h := getenv("HOME"); h != "" {
		return h
	}
	h, _ := os.UserHomeDir()
	return h
}

// SelectedContext is the name of the context selected with
// `nats context select` (<config>/nats/context.txt), "" when none is.
func SelectedContext(getenv func(string) string) (string, error) {
	dir, err := ConfigDir(getenv)
	if err != nil {
		return "", err
	}
	b, err := os.ReadFile(filepath.Join(dir, "context.txt"))
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("nats contexts: selected context: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// validContextName refuses names that would leave the context directory.
func validContextName(name string) error {
	if name == "" || strings.ContainsAny(name, `/\`) || strings.Contains(name, "..") || strings.ContainsRune(name, 0) {
		return fmt.Errorf("context name %q: want a plain name such as dev or ngs.js", name)
	}
	return nil
}

// ReadContext reads the NATS CLI context name ("." for the selected one)
// with getenv (nil: os.Getenv) giving XDG_CONFIG_HOME and HOME. File names
// in it ("creds", "nkey", "cert", "key", "ca") may be plain paths or
// file:// URIs; ~ and $VAR are expanded by Config.Resolve. Errors name the
// context and its file, never a secret it holds.
func ReadContext(name string, getenv func(string) string) (Context, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	if name == "." {
		sel, err := SelectedContext(getenv)
		if err != nil {
			return Context{}, fmt.Errorf("-context (%s) .: %w", EnvContext, err)
		}
		if sel == "" {
			return Context{}, fmt.Errorf("-context (%s) .: no context is selected (nats context select NAME)", EnvContext)
		}
		name = sel
	}
	if err := validContextName(name); err != nil {
		return Context{}, fmt.Errorf("-context (%s): %w", EnvContext, err)
	}
	dir, err := ConfigDir(getenv)
	if err != nil {
		return Context{}, fmt.Errorf("-context (%s) %s: %w", EnvContext, name, err)
	}
	path := filepath.Join(dir, "context", name+".json")
	b, err := os.ReadFile(path)
	if err != nil {
		return Context{}, fmt.Errorf("-context (%s) %s: %s: %w", EnvContext, name, path, unwrapPath(err))
	}
	var c Context
	if err := json.Unmarshal(b, &c); err != nil {
		// Syntax and type errors name an offset or a field, not a value.
		return Context{}, fmt.Errorf("-context (%s) %s: %s: not a context file: %v", EnvContext, name, path, err)
	}
	c.Name = name
	for _, f := range []struct{ field, v string }{
		{"nsc", c.NSC}, {"socks_proxy", c.SocksProxy}, {"user_jwt", c.UserJWT}, {"user_seed", c.UserSeed},
		{"windows_cert_store", c.WinCertStore},
	} {
		if f.v != "" {
			return Context{}, fmt.Errorf("-context (%s) %s: %s: %q is not supported by natspipe; use creds, nkey, user/password or token", EnvContext, name, path, f.field)
		}
	}
	for _, f := range []struct {
		field string
		p     *string
	}{{"creds", &c.Creds}, {"nkey", &c.NKey}, {"cert", &c.Cert}, {"key", &c.Key}, {"ca", &c.CA}} {
		v := *f.p
		if strings.HasPrefix(strings.ToLower(v), "file://") {
			*f.p = v[len("file://"):]
		} else if strings.Contains(v, "://") {
			return Context{}, fmt.Errorf("-context (%s) %s: %s: %q is a %s reference; natspipe reads only files", EnvContext, name, path, f.field, v[:strings.Index(v, "://")+3])
		}
	}
	return c, nil
}
