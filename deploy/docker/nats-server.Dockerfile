# nats-server, built by scripts/build-images.sh from the module version
# go.mod pins (the one the embedded test servers run), CGO_ENABLED=0.
# JetStream's store is /data: mount a volume there.
FROM scratch
COPY nats-server /nats-server
EXPOSE 4222 6222 8222
ENTRYPOINT ["/nats-server"]
