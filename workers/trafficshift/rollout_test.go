package trafficshift

import (
	"reflect"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/sluice-ci/sluice/deploy"
	sluicev1 "github.com/sluice-ci/sluice/proto/sluice/v1"
)

// everyRolloutField sets every field of a rollout block, each to a value of its own.
func everyRolloutField() *sluicev1.RolloutSpec {
	return &sluicev1.RolloutSpec{
		Router: &sluicev1.RouterSpec{Type: "nginx", Config: "/etc/nginx/app.conf", Upstream: "app", Stable: "blue", Canary: "green",
			Admin: "127.0.0.1:9091", Socket: "/run/haproxy.sock", Backend: "be"},
		Deploy: &sluicev1.DeploySpec{Run: []string{"./deploy.sh green"}, Health: &sluicev1.HealthCheck{Url: "http://127.0.0.1:1/healthz", Timeout: durationpb.New(90 * time.Second)}},
		Steps:  []*sluicev1.RolloutStep{{Weight: 10, Pause: durationpb.New(time.Minute), Approval: true}},
		Analysis: &sluicev1.AnalysisSpec{
			Interval:     durationpb.New(30 * time.Second),
			FailureLimit: 2,
			Provider:     &sluicev1.ProviderSpec{Type: "prometheus", Url: "http://127.0.0.1:9090", Queries: map[string]string{"latency_samples": "q"}},
			Metrics:      []*sluicev1.MetricSpec{{Name: "error_rate", Max: proto.Float64(0.1), Min: proto.Float64(0.01), MaxRatioToBaseline: proto.Float64(1.5), Query: "rate(x[1m])"}},
			Judge:        &sluicev1.JudgeSpec{Type: "mann-whitney", Confidence: 0.98, MinSamples: 50, MaxEffectSize: 1.3},
		},
		OnFailure: "freeze",
	}
}

func TestRolloutOf(t *testing.T) {
	tests := []struct {
		name string
		spec *sluicev1.RolloutSpec
		want deploy.Rollout
	}{
		{"nil", nil, deploy.Rollout{}},
		{"router only", &sluicev1.RolloutSpec{Router: &sluicev1.RouterSpec{Type: "builtin", Admin: "127.0.0.1:9091"}},
			deploy.Rollout{Router: deploy.RouterConfig{Type: "builtin", Admin: "127.0.0.1:9091"}}},
		{"health without a timeout", &sluicev1.RolloutSpec{Deploy: &sluicev1.DeploySpec{Health: &sluicev1.HealthCheck{Url: "http://h/healthz"}}},
			deploy.Rollout{Health: deploy.Health{URL: "http://h/healthz"}}},
		{"empty analysis", &sluicev1.RolloutSpec{Analysis: &sluicev1.AnalysisSpec{}}, deploy.Rollout{Analysis: &deploy.Analysis{}}},
		{"every field", everyRolloutField(), deploy.Rollout{
			Router: deploy.RouterConfig{Type: "nginx", Stable: "blue", Canary: "green", Admin: "127.0.0.1:9091",
				Config: "/etc/nginx/app.conf", Upstream: "app", Socket: "/run/haproxy.sock", Backend: "be"},
			Health: deploy.Health{URL: "http://127.0.0.1:1/healthz", Timeout: 90 * time.Second},
			Analysis: &deploy.Analysis{
				Interval: 30 * time.Second,
				Provider: deploy.ProviderConfig{Type: "prometheus", URL: "http://127.0.0.1:9090", Queries: map[string]string{"latency_samples": "q"}},
				Metrics:  []deploy.Metric{{Name: "error_rate", Max: proto.Float64(0.1), Min: proto.Float64(0.01), MaxRatioToBaseline: proto.Float64(1.5), Query: "rate(x[1m])"}},
				Judge:    deploy.JudgeConfig{Type: "mann-whitney", Confidence: 0.98, MinSamples: 50, MaxEffectSize: 1.3},
			},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := rolloutOf(tt.spec); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("rolloutOf =\n%+v\nwant\n%+v", got, tt.want)
			}
		})
	}
}

// notConverted are the rollout block's fields the worker and the coordinator act on
// themselves; every other field must reach the engine.
var notConverted = map[protoreflect.FullName]bool{
	"sluice.v1.DeploySpec.run":             true,
	"sluice.v1.RolloutSpec.steps":          true,
	"sluice.v1.RolloutSpec.on_failure":     true,
	"sluice.v1.AnalysisSpec.failure_limit": true,
}

// TestRolloutOfFixtureIsComplete keeps the "every field" case above complete: a field added to
// the rollout block fails here until the fixture sets it, and so until rolloutOf converts it.
func TestRolloutOfFixtureIsComplete(t *testing.T) {
	var walk func(m protoreflect.Message)
	walk = func(m protoreflect.Message) {
		fields := m.Descriptor().Fields()
		for i := range fields.Len() {
			fd := fields.Get(i)
			if notConverted[fd.FullName()] {
				continue
			}
			if !m.Has(fd) {
				t.Errorf("everyRolloutField sets no %s: convert it in rolloutOf and set it there", fd.FullName())
				continue
			}
			switch {
			case fd.IsList() && fd.Message() != nil:
				for j := range m.Get(fd).List().Len() {
					walk(m.Get(fd).List().Get(j).Message())
				}
			case fd.Message() != nil && !fd.IsMap() && fd.Message().FullName() != "google.protobuf.Duration":
				walk(m.Get(fd).Message())
			}
		}
	}
	walk(everyRolloutField().ProtoReflect())
}
