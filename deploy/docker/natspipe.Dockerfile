# natspipe, the harness: natspipe run -attach drives a Compose stack's
# workers from inside its network. FROM scratch: the static binary that
# scripts/build-images.sh builds (CGO_ENABLED=0) is all the image holds.
FROM scratch
COPY natspipe /natspipe
ENTRYPOINT ["/natspipe"]
