#!/bin/sh
# install-natscli.sh: installs the NATS command-line tool, nats (natscli),
# at the version natspipe's README is written against, into .build/bin/
# (gitignored), from the Go module proxy: for looking at running workers
# (nats micro ls, nats micro info natspipe, nats micro stats natspipe,
# nats server report connections). Needs Go; no root.
#
# Idempotent: a .build/bin/nats of that version is left as it is. Prints
# its path and version.
#
#   scripts/install-natscli.sh
#   .build/bin/nats --server nats://127.0.0.1:4222 micro ls
set -eu

NATSCLI_VERSION=v0.5.0 # github.com/nats-io/natscli

root=$(cd "$(dirname "$0")/.." && pwd)
bin="$root/.build/bin"
nats="$bin/nats"
export PATH="/usr/local/go/bin:$PATH"

say() { echo "install-natscli: $*"; }

installed() {
	[ -x "$nats" ] && [ "$("$nats" --version 2>/dev/null)" = "$NATSCLI_VERSION" ]
}

if installed; then
	say "$nats $NATSCLI_VERSION already installed"
else
	command -v go >/dev/null 2>&1 || {
		say "needs the go command (https://go.dev/dl/)" >&2
		exit 1
	}
	mkdir -p "$bin"
	say "building github.com/nats-io/natscli/nats@$NATSCLI_VERSION into $bin"
	# Outside the module's settings: go install pkg@version builds the
	# tool with its own go.mod.
	(cd "$bin" && GOFLAGS= GOBIN="$bin" go install "github.com/nats-io/natscli/nats@$NATSCLI_VERSION")
	installed || {
		say "$nats --version says '$("$nats" --version 2>&1 || true)', want $NATSCLI_VERSION" >&2
		exit 1
	}
fi
echo "$nats $("$nats" --version)"
