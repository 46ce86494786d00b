package spec

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/sluice-ci/sluice/deploy"
	"github.com/sluice-ci/sluice/deploy/deploytest"
	"github.com/sluice-ci/sluice/deploy/metrics"
)

// nop is a router, a metrics provider and a judge that do nothing.
type nop struct{}

func (nop) SetWeight(context.Context, int) error { return nil }
func (nop) Weight(context.Context) (int, error)  { return 0, nil }
func (nop) Measure(context.Context, time.Duration) (metrics.Pair, error) {
	return metrics.Pair{}, nil
}
func (nop) Checks(metrics.Pair) []deploy.Check { return nil }

// rolloutWith is a pipeline whose rollout uses the given router and analysis blocks.
func rolloutWith(router, analysis string) string {
	return "version: 1\nname: p\nstages:\n  prod:\n    kind: traffic-shift\n    rollout:\n      router: " + router +
		"\n      steps: [{weight: 100}]\n      analysis: " + analysis + "\n"
}

// Validation allows exactly the registered routers, providers and judges, and requires what
// each needs: a module a test registers is allowed while the test runs, and only then.
func TestRegisteredModules(t *testing.T) {
	tests := []struct {
		name, router, analysis string
		// want is every problem as "FIELD: MSG", "" for a valid pipeline.
		want string
	}{
		{"registered modules", "{type: envoy, admin: \"127.0.0.1:9901\"}", "{provider: {type: datadog, url: \"https://dd\"}, judge: {type: bayes}}", ""},
		{"registered router without what it needs", "{type: envoy}", "{provider: {type: datadog, url: \"https://dd\"}}",
			"stages.prod.rollout.router.admin: missing: the envoy router needs admin"},
		{"registered provider without what it needs", "{type: envoy, admin: a}", "{provider: {type: datadog}}",
			"stages.prod.rollout.analysis.provider.url: missing: the datadog provider needs url"},
		{"the lists name the registered ones", "{type: istio}", "{judge: {type: t-test}}",
			"stages.prod.rollout.router.type: \"istio\" is not allowed: use one of builtin, envoy, haproxy, nginx\n" +
				"stages.prod.rollout.analysis.judge.type: \"t-test\" is not allowed: use one of bayes, mann-whitney, thresholds"},
	}
	t.Run("registered", func(t *testing.T) {
		deploytest.Router(t, deploy.RouterModule{Name: "envoy", Needs: []string{"admin"},
			New: func(deploy.RouterConfig, deploy.Options) (deploy.Router, error) { return nop{}, nil }})
		deploytest.Provider(t, deploy.ProviderModule{Name: "datadog", Needs: []string{"url"},
			New: func(deploy.Measurement, deploy.Options) (deploy.Provider, error) { return nop{}, nil }})
		deploytest.Judge(t, deploy.JudgeModule{Name: "bayes",
			New: func(deploy.JudgeConfig, []deploy.Metric) (deploy.Judge, error) { return nop{}, nil }})
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				_, err := Parse("p.yaml", []byte(rolloutWith(tt.router, tt.analysis)), nil, noEnv)
				if got := messages(err); got != tt.want {
					t.Errorf("problems\n%s\nwant\n%s", got, tt.want)
				}
			})
		}
	})
	_, err := Parse("p.yaml", []byte(rolloutWith("{type: envoy, admin: a}", "{provider: {type: datadog, url: u}, judge: {type: bayes}}")), nil, noEnv)
	want := "stages.prod.rollout.router.type: \"envoy\" is not allowed: use one of builtin, haproxy, nginx\n" +
		"stages.prod.rollout.analysis.provider.type: \"datadog\" is not allowed: use one of builtin, prometheus\n" +
		"stages.prod.rollout.analysis.judge.type: \"bayes\" is not allowed: use one of mann-whitney, thresholds"
	if got := messages(err); got != want {
		t.Errorf("after the test, problems\n%s\nwant\n%s", got, want)
	}
	if !strings.Contains(err.Error(), "p.yaml:7:") {
		t.Errorf("no position in %v", err)
	}
}
