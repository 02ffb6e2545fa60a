# natspipe-worker, one stage's worker process (deploy/compose/compose.yaml
# runs one service per stage). FROM scratch: the static binary that
# scripts/build-images.sh builds (CGO_ENABLED=0) is all the image holds.
FROM scratch
COPY natspipe-worker /natspipe-worker
USER 65534:65534
ENTRYPOINT ["/natspipe-worker"]
