package trafficshift

import (
	sluicev1 "github.com/sluice-ci/sluice/proto/sluice/v1"
	"github.com/sluice-ci/sluice/workers"
)

// Register installs the zero Handler for the traffic-shift kind: routers, providers and
// health URLs reached with the deploy engine's default options.
func Register(r *workers.Registry) {
	r.Register(sluicev1.StageKind_STAGE_KIND_TRAFFIC_SHIFT, Handler{})
}
