package main

import (
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluice-ci/sluice/workers"
	"github.com/sluice-ci/sluice/workers/testkind"
)

// registerTest gives `sluice dev` and `sluice worker` the test kind's handler
// (kindRegistry): `run:` test commands, units split across shards by the durations recorded
// in timings, `go test -json` and JUnit reports read into findings and a JUnit artifact.
func registerTest(r *workers.Registry, timings jetstream.KeyValue) {
	r.Register(testkind.Kind, testkind.Handler{Timings: timings})
}
