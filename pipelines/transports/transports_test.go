package transports_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/natspipe/natspipe/pipelines"
	"github.com/natspipe/natspipe/pipelines/transport"
	"github.com/natspipe/natspipe/pipelines/transports"
)

func names(ts []transport.Transport) string {
	var ns []string
	for _, t := range ts {
		ns = append(ns, t.Name())
	}
	return strings.Join(ns, ",")
}

func env(v string) func(string) string {
	return func(k string) string {
		if k == transports.EnvTransport {
			return v
		}
		return ""
	}
}

func TestSelection(t *testing.T) {
	all := strings.Join(transports.Names(), ",")
	embedded := names(transports.Embedded())
	if embedded != "core,js" {
		t.Errorf("Embedded = %s, want core,js", embedded)
	}
	for _, c := range []struct {
		env, fromEnv, compared string
	}{
		{"", transports.Default, embedded},
		{"  ", transports.Default, embedded},
		{"core", "core", "core"},
		{"js", "js", "js"},
		{"js, core", "js,core", "js,core"},
		{"all", all, all},
	} {
		got, err := transports.FromEnv(env(c.env))
		if err != nil {
			t.Fatalf("FromEnv %q: %v", c.env, err)
		}
		if names(got) != c.fromEnv {
			t.Errorf("FromEnv %q = %s, want %s", c.env, names(got), c.fromEnv)
		}
		got, err = transports.Compared(env(c.env))
		if err != nil {
			t.Fatalf("Compared %q: %v", c.env, err)
		}
		if names(got) != c.compared {
			t.Errorf("Compared %q = %s, want %s", c.env, names(got), c.compared)
		}
	}
}

func TestSelectionBad(t *testing.T) {
	for _, c := range []struct{ env, want string }{
		{"mqtt", "unknown transport"},
		{"core,", "empty transport name"},
		{"core,core", "named twice"},
		{"all,js", "unknown transport"},
	} {
		for name, f := range map[string]func(pipelines.Getenv) ([]transport.Transport, error){
			"FromEnv": transports.FromEnv, "Compared": transports.Compared,
		} {
			_, err := f(env(c.env))
			if err == nil {
				t.Errorf("%s %q: no error", name, c.env)
				continue
			}
			for _, want := range []string{transports.EnvTransport, c.want} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("%s %q: error %q does not say %q", name, c.env, err, want)
				}
			}
		}
	}
	_, err := transports.FromEnv(env("mqtt"))
	if !errors.Is(err, transports.ErrUnknown) {
		t.Errorf("unknown name: %v does not wrap ErrUnknown", err)
	}
}
