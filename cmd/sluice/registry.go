package main

import (
	"github.com/nats-io/nats.go/jetstream"

	sluicev1 "github.com/sluice-ci/sluice/proto/sluice/v1"
	"github.com/sluice-ci/sluice/workers"
	"github.com/sluice-ci/sluice/workers/contract"
	"github.com/sluice-ci/sluice/workers/load"
	"github.com/sluice-ci/sluice/workers/trafficshift"
)

// kindRegistry is every kind's handler in this binary: the generic `run:` handler, replaced
// by a kind's engine where one exists. `sluice dev` and `sluice worker` both use it; the test
// kind records and reads test durations in timings.
func kindRegistry(timings jetstream.KeyValue) *workers.Registry {
	r := workers.DefaultRegistry()
	r.Register(sluicev1.StageKind_STAGE_KIND_CONTRACT, contract.Handler{})
	r.Register(sluicev1.StageKind_STAGE_KIND_LOAD, load.Handler{})
	registerBackupVerify(r)
	registerE2E(r)
	registerStatic(r)
	registerTest(r, timings)
	r.Register(sluicev1.StageKind_STAGE_KIND_TRAFFIC_SHIFT, trafficshift.Handler{})
	return r
}
