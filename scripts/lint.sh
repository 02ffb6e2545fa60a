#!/usr/bin/env bash
# lint.sh: the static checks CI runs: gofmt, go vet, go mod tidy (no diff),
# no test-only code (the testing package) linked into the commands, and
# staticcheck at a pinned version (built into .bin/ from the Go module
# proxy when missing). Exit 1 on any finding.
#
# usage: scripts/lint.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

STATICCHECK_VERSION=v0.8.2 # honnef.co/go/tools

echo "lint.sh: gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go'))
if [ -n "$unformatted" ]; then echo "not gofmt'ed:"; echo "$unformatted"; exit 1; fi

echo "lint.sh: go vet"
go vet ./...

echo "lint.sh: go mod tidy -diff"
if ! GOFLAGS= go mod tidy -diff; then
	echo "go.mod/go.sum are not tidy: run go mod tidy and commit the result" >&2
	exit 1
fi

echo "lint.sh: no testing package in the commands"
for cmd in ./cmd/*/; do
	if go list -deps "$cmd" | grep -qx testing; then
		echo "$cmd links the testing package: a test helper is imported by production code" >&2
		exit 1
	fi
done

bin="$root/.bin/staticcheck-$STATICCHECK_VERSION"
if [ ! -x "$bin" ]; then
	mkdir -p "$root/.bin"
	echo "lint.sh: building staticcheck $STATICCHECK_VERSION"
	GOFLAGS= GOBIN="$root/.bin/tmp-$$" go install "honnef.co/go/tools/cmd/staticcheck@$STATICCHECK_VERSION"
	mv "$root/.bin/tmp-$$/staticcheck" "$bin"
	rmdir "$root/.bin/tmp-$$"
fi
echo "lint.sh: staticcheck $STATICCHECK_VERSION"
"$bin" ./...
echo "lint.sh: clean"
