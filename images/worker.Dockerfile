# The image of every worker kind: the Debian base (scripts/build-images makes it with
# debootstrap) with what the kinds run: a shell, git and tar for run: steps, Chromium for
# e2e, PostgreSQL for backup-verify's throwaway clusters, nginx and HAProxy for
# traffic-shift routers, k6 for load, and the Go toolchain of this checkout for Go
# pipelines (the examples are Go).
ARG BASE
FROM ${BASE}
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      chromium git haproxy nginx postgresql procps tar \
 && rm -rf /var/lib/apt/lists/* \
 && for svc in nginx haproxy postgresql; do rm -f /etc/init.d/$svc; done
COPY go /usr/local/go
COPY k6 sluice /usr/local/bin/
ENV PATH=/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    GOTOOLCHAIN=local \
    GOFLAGS=-buildvcs=false
# Root, so that the worker can run each step as a step user of its own (--step-uids) in a
# PID namespace; the container needs CAP_SYS_ADMIN for the namespace (compose.yaml).
WORKDIR /var/lib/sluice
ENTRYPOINT ["/usr/local/bin/sluice"]
CMD ["worker", "--help"]
