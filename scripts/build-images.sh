#!/usr/bin/env bash
# Builds natspipe's container images, FROM scratch (no base image can be
# pulled here): static binaries (CGO_ENABLED=0) of natspipe,
# natspipe-worker and nats-server (the version go.mod pins) into a build
# directory outside git, then one image each from deploy/docker/:
#
#   natspipe/natspipe:TAG  natspipe/natspipe-worker:TAG  natspipe/nats-server:TAG
#
# Environment: NATSPIPE_IMAGE_TAG (default dev), NATSPIPE_BUILD_DIR (default
# .build/images, gitignored). Needs Go and a Docker engine; the only network
# it uses is the Go module proxy (modules not yet in the cache).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"
tag=${NATSPIPE_IMAGE_TAG:-dev}
out=${NATSPIPE_BUILD_DIR:-.build/images}
mkdir -p "$out"
start=$(date +%s)
# Without -trimpath, so the compiles are the build cache's of go build and
# go test (CGO_ENABLED=0 aside): only the link is new.
build() { CGO_ENABLED=0 go build -ldflags='-s -w' -o "$out/" "$@"; }
build ./cmd/natspipe ./cmd/natspipe-worker
build github.com/nats-io/nats-server/v2
echo "binaries in $out: $(cd "$out" && ls natspipe natspipe-worker nats-server | tr '\n' ' ')($(( $(date +%s) - start ))s)"
for img in natspipe natspipe-worker nats-server; do
	# The image the tag names now, removed below when the build replaces
	# it, so rebuilding leaves no untagged images behind.
	old=$(timeout 30 docker image inspect --format '{{.Id}}' "natspipe/$img:$tag" 2>/dev/null || true)
	# The classic builder: no BuildKit front end to pull, the build context
	# is the binaries alone.
	if ! DOCKER_BUILDKIT=0 timeout 300 docker build --quiet --file "deploy/docker/$img.Dockerfile" \
		--tag "natspipe/$img:$tag" "$out" >"$out/docker-build.log" 2>&1; then
		cat "$out/docker-build.log" >&2
		echo "build-images.sh: docker build of natspipe/$img:$tag failed" >&2
		exit 1
	fi
	if [ -n "$old" ] && [ "$old" != "$(timeout 30 docker image inspect --format '{{.Id}}' "natspipe/$img:$tag")" ]; then
		timeout 60 docker rmi "$old" >/dev/null 2>&1 || true # still used by a container: kept
	fi
	echo "image natspipe/$img:$tag: $(timeout 30 docker image inspect --format '{{.Size}}' "natspipe/$img:$tag" | awk '{printf "%.1f MB\n", $1/1e6}')"
done
