# nats-server, built from the nats-server module pinned in tools/go.mod (the version the
# embedded server of `sluice dev` runs), and sluice for the container's health check.
FROM scratch
COPY nats-server sluice /
EXPOSE 4222 6222 8222
ENTRYPOINT ["/nats-server"]
