package trafficshift_test

import (
	"fmt"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/sluice-ci/sluice/deploy"
	"github.com/sluice-ci/sluice/deploy/proxy"
	"github.com/sluice-ci/sluice/internal/realtest"
	sluicev1 "github.com/sluice-ci/sluice/proto/sluice/v1"
	"github.com/sluice-ci/sluice/workers/trafficshift"
)

// instrumented serves a backend through a proxy that sends it everything and exports its
// requests, errors, empty bodies and latencies as Prometheus metrics labelled with name, as
// an instrumented service would. It returns the serving port and the metrics address.
func instrumented(t *testing.T, name string, f realtest.Fault) (port int, metrics string) {
	t.Helper()
	b := realtest.StartBackend(t, name, f)
	u, _ := url.Parse(b.URL)
	p, err := proxy.New(proxy.Config{Stable: u, Canary: u, StableName: name, CanaryName: name + "-unused"})
	if err != nil {
		t.Fatal(err)
	}
	front, admin := httptest.NewServer(p), httptest.NewServer(p.AdminHandler())
	t.Cleanup(front.Close)
	t.Cleanup(admin.Close)
	addr, _ := url.Parse(front.URL)
	var n int
	_, _ = fmt.Sscanf(addr.Port(), "%d", &n)
	return n, admin.Listener.Addr().String()
}

// Whole rollouts through real nginx and real HAProxy, judged on metrics a real Prometheus
// scraped from the two versions: a healthy green is promoted, a green failing 5% of its
// requests is rolled back at the first step.
func TestRolloutsThroughRealRoutersWithPrometheus(t *testing.T) {
	for _, router := range []string{"nginx", "haproxy"} {
		for _, tc := range []struct {
			name  string
			fault realtest.Fault
			want  sluicev1.RolloutPhase
		}{
			{"healthy", realtest.Fault{Delay: time.Millisecond}, sluicev1.RolloutPhase_ROLLOUT_PHASE_PROMOTED},
			{"failing 5%", realtest.Fault{Delay: time.Millisecond, ErrorEvery: 20}, sluicev1.RolloutPhase_ROLLOUT_PHASE_ROLLED_BACK},
		} {
			t.Run(router+"/"+tc.name, func(t *testing.T) {
				bluePort, blueMetrics := instrumented(t, "blue", realtest.Fault{Delay: time.Millisecond})
				greenPort, greenMetrics := instrumented(t, "green", tc.fault)
				spec := &sluicev1.RouterSpec{Type: router, Stable: "blue", Canary: "green"}
				var h trafficshift.Handler
				var front int
				switch router {
				case "nginx":
					n := realtest.StartNginx(t, fmt.Sprintf("upstream app {\n\tserver 127.0.0.1:%d; # blue\n\tserver 127.0.0.1:%d down; # green\n}\n", bluePort, greenPort))
					spec.Config, spec.Upstream, front = n.UpstreamConf, "app", n.Port
					h.Options = deploy.Options{NginxBin: n.Bin, NginxArgs: n.Args}
				case "haproxy":
					hp := realtest.StartHAProxy(t, bluePort, greenPort)
					spec.Socket, spec.Backend, front = hp.Socket, "app", hp.Port
				}
				prom := realtest.StartPrometheus(t, blueMetrics, greenMetrics)
				traffic := realtest.StartTraffic(t, fmt.Sprintf("http://%s/", realtest.Addr(front)), time.Millisecond)
				r := &rig{client: startSluice(t, h)}
				st := r.run(t, &sluicev1.PipelineSpec{Version: 1, Name: "shop", Stages: []*sluicev1.StageSpec{{
					Name: "production", Kind: sluicev1.StageKind_STAGE_KIND_TRAFFIC_SHIFT, Shards: 1, Timeout: durationpb.New(time.Minute),
					Rollout: &sluicev1.RolloutSpec{
						Router: spec,
						Steps:  []*sluicev1.RolloutStep{{Weight: 10, Pause: durationpb.New(4 * time.Second)}, {Weight: 100}},
						Analysis: &sluicev1.AnalysisSpec{
							Interval: durationpb.New(2 * time.Second),
							Provider: &sluicev1.ProviderSpec{Type: "prometheus", Url: prom.URL},
							Metrics: []*sluicev1.MetricSpec{
								{Name: "error_rate", MaxRatioToBaseline: proto.Float64(1.5)},
								{Name: "null_response_rate", Max: proto.Float64(0.01)},
							},
							Judge: &sluicev1.JudgeSpec{Type: "thresholds", MinSamples: 10},
						},
						OnFailure: "rollback",
					},
				}}})
				ro := st.GetStages()[0].GetRollout()
				if ro.GetPhase() != tc.want {
					t.Fatalf("rollout %v, want %v: %s", ro.GetPhase(), tc.want, st.GetStages()[0].GetMessage())
				}
				for _, v := range ro.GetVerdicts() {
					t.Logf("step at %d%%: %s", v.GetWeight(), v.GetVerdict().GetMessage())
				}
				t.Logf("clients saw %d errors of %d requests through %s", traffic.Failed.Load(), traffic.Sent.Load(), router)
			})
		}
	}
}
