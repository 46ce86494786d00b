package main

import (
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluice-ci/sluice/workers"
	bvkind "github.com/sluice-ci/sluice/workers/backupverify"
	contractkind "github.com/sluice-ci/sluice/workers/contract"
	e2ekind "github.com/sluice-ci/sluice/workers/e2e"
	"github.com/sluice-ci/sluice/workers/load"
	"github.com/sluice-ci/sluice/workers/static"
	"github.com/sluice-ci/sluice/workers/testkind"
	"github.com/sluice-ci/sluice/workers/trafficshift"
)

// kindRegistry is every kind's handler in this binary: the generic `run:` handler, replaced
// by a kind's engine where one exists. `sluice dev` and `sluice worker` both use it; the
// test and e2e kinds record and read durations in timings to balance their shards.
func kindRegistry(timings jetstream.KeyValue) *workers.Registry {
	r := workers.DefaultRegistry()
	bvkind.Register(r)
	contractkind.Register(r)
	e2ekind.Register(r, timings)
	load.Register(r)
	static.Register(r)
	testkind.Register(r, timings)
	trafficshift.Register(r)
	return r
}
