package deploy_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluice-ci/sluice/deploy"
	"github.com/sluice-ci/sluice/deploy/deploytest"
	"github.com/sluice-ci/sluice/deploy/metrics"
)

func TestBuiltinModules(t *testing.T) {
	for _, tt := range []struct {
		what      string
		got, want []string
	}{
		{"routers", deploy.Routers(), []string{"builtin", "haproxy", "nginx"}},
		{"providers", deploy.Providers(), []string{"builtin", "prometheus"}},
		{"judges", deploy.Judges(), []string{"mann-whitney", "thresholds"}},
	} {
		if !slices.Equal(tt.got, tt.want) {
			t.Errorf("%s %v, want %v", tt.what, tt.got, tt.want)
		}
	}
}

func TestRegisterPanics(t *testing.T) {
	newRouter := func(deploy.RouterConfig, deploy.Options) (deploy.Router, error) { return nil, nil }
	newProvider := func(deploy.Measurement, deploy.Options) (deploy.Provider, error) { return nil, nil }
	newJudge := func(deploy.JudgeConfig, []deploy.Metric) (deploy.Judge, error) { return nil, nil }
	for _, tt := range []struct {
		name     string
		register func()
		want     string
	}{
		{"router twice", func() { deploy.RegisterRouter(deploy.RouterModule{Name: "nginx", New: newRouter}) }, `router "nginx" registered twice`},
		{"provider twice", func() { deploy.RegisterProvider(deploy.ProviderModule{Name: "prometheus", New: newProvider}) }, `provider "prometheus" registered twice`},
		{"judge twice", func() { deploy.RegisterJudge(deploy.JudgeModule{Name: "thresholds", New: newJudge}) }, `judge "thresholds" registered twice`},
		{"no name", func() { deploy.RegisterRouter(deploy.RouterModule{New: newRouter}) }, "needs a name and a New function"},
		{"no New", func() { deploy.RegisterJudge(deploy.JudgeModule{Name: "bayes"}) }, "needs a name and a New function"},
		{"router needs an unknown field", func() {
			deploy.RegisterRouter(deploy.RouterModule{Name: "envoy", Needs: []string{"cluster"}, New: newRouter})
		}, `router "envoy" needs "cluster", which is no router config field`},
		{"provider needs an unknown field", func() {
			deploy.RegisterProvider(deploy.ProviderModule{Name: "datadog", Needs: []string{"api_key"}, New: newProvider})
		}, `provider "datadog" needs "api_key", which is no provider config field`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				r := recover()
				if r == nil {
					t.Fatal("no panic")
				}
				if msg := fmt.Sprint(r); !strings.Contains(msg, tt.want) {
					t.Errorf("panic %q, want it to say %q", msg, tt.want)
				}
			}()
			tt.register()
		})
	}
	// A registration that panicked left nothing behind.
	if got := deploy.Routers(); !slices.Equal(got, []string{"builtin", "haproxy", "nginx"}) {
		t.Errorf("routers after the panics: %v", got)
	}
}

func TestUnknownNamesListTheRegisteredOnes(t *testing.T) {
	builtin := deploy.RouterConfig{Type: "builtin", Admin: "127.0.0.1:1"}
	for _, tt := range []struct {
		name string
		r    deploy.Rollout
		want string
	}{
		{"no router type", deploy.Rollout{}, "bad rollout spec: no router type: want one of builtin, haproxy, nginx"},
		{"unknown router", deploy.Rollout{Router: deploy.RouterConfig{Type: "istio"}}, `bad rollout spec: router type "istio": want one of builtin, haproxy, nginx`},
		{"unknown provider", deploy.Rollout{Router: builtin, Analysis: &deploy.Analysis{Provider: deploy.ProviderConfig{Type: "datadog"}}},
			`bad rollout spec: provider type "datadog": want one of builtin, prometheus`},
		{"unknown judge", deploy.Rollout{Router: builtin, Analysis: &deploy.Analysis{Judge: deploy.JudgeConfig{Type: "bayes"}}},
			`bad rollout spec: judge type "bayes": want one of mann-whitney, thresholds`},
		{"missing needs", deploy.Rollout{Router: deploy.RouterConfig{Type: "nginx", Config: "/etc/nginx/app.conf", Stable: "blue"}},
			"bad rollout spec: nginx router needs canary, upstream"},
		{"provider needs", deploy.Rollout{Router: builtin, Analysis: &deploy.Analysis{Provider: deploy.ProviderConfig{Type: "prometheus"}}},
			"bad rollout spec: prometheus provider needs url"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := deploy.New(tt.r, deploy.Options{})
			if !errors.Is(err, deploy.ErrSpec) || err.Error() != tt.want {
				t.Errorf("err %v, want ErrSpec: %s", err, tt.want)
			}
		})
	}
}

// fakeRouter keeps its weight in memory.
type fakeRouter struct{ weight int }

func (f *fakeRouter) SetWeight(_ context.Context, w int) error { f.weight = w; return nil }
func (f *fakeRouter) Weight(context.Context) (int, error)      { return f.weight, nil }

// fakeProvider measures an error rate per backend, and records what it was asked for.
type fakeProvider struct {
	asked                  deploy.Measurement
	stableRate, canaryRate float64
}

func (f *fakeProvider) Measure(context.Context, time.Duration) (metrics.Pair, error) {
	obs := func(r float64) metrics.Observation {
		return metrics.Observation{Values: map[string]float64{metrics.Requests: 100, metrics.ErrorRate: r}}
	}
	return metrics.Pair{Stable: obs(f.stableRate), Canary: obs(f.canaryRate)}, nil
}

// fakeJudge finds the canary unhealthy when its error rate is above the stable backend's.
type fakeJudge struct{}

func (fakeJudge) Checks(p metrics.Pair) []deploy.Check {
	c := deploy.Check{Metric: metrics.ErrorRate, Rule: "above-stable", Outcome: deploy.Healthy, Reason: "not above stable"}
	if p.Canary.Values[metrics.ErrorRate] > p.Stable.Values[metrics.ErrorRate] {
		c.Outcome, c.Reason = deploy.Unhealthy, "above stable"
	}
	return []deploy.Check{c}
}

// A router, provider and judge registered by a test are built by New from their names, get
// what their modules declare, drive a rollout, and are gone when the test ends.
func TestRegisteredModulesAreUsedByNew(t *testing.T) {
	router := &fakeRouter{}
	provider := &fakeProvider{canaryRate: 0.05}
	t.Run("registered", func(t *testing.T) {
		deploytest.Router(t, deploy.RouterModule{Name: "fake", Needs: []string{"admin"}, New: func(c deploy.RouterConfig, _ deploy.Options) (deploy.Router, error) {
			if c.Admin != "fake:1" {
				return nil, fmt.Errorf("admin %q", c.Admin)
			}
			return router, nil
		}})
		deploytest.Provider(t, deploy.ProviderModule{Name: "fake", New: func(m deploy.Measurement, _ deploy.Options) (deploy.Provider, error) {
			provider.asked = m
			return provider, nil
		}})
		deploytest.Judge(t, deploy.JudgeModule{Name: "fake", Samples: true, New: func(deploy.JudgeConfig, []deploy.Metric) (deploy.Judge, error) {
			return fakeJudge{}, nil
		}})
		if got := deploy.Routers(); !slices.Contains(got, "fake") {
			t.Fatalf("routers %v", got)
		}
		if _, err := deploy.New(deploy.Rollout{Router: deploy.RouterConfig{Type: "fake"}}, deploy.Options{}); err == nil || err.Error() != "bad rollout spec: fake router needs admin" {
			t.Errorf("without admin: %v", err)
		}
		e, err := deploy.New(deploy.Rollout{
			Router: deploy.RouterConfig{Type: "fake", Admin: "fake:1", Stable: "blue"},
			Analysis: &deploy.Analysis{
				Interval: time.Millisecond,
				Provider: deploy.ProviderConfig{Type: "fake"},
				Metrics:  []deploy.Metric{{Name: metrics.ErrorRate}},
				Judge:    deploy.JudgeConfig{Type: "fake", MinSamples: 10},
			},
		}, deploy.Options{})
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		if err := e.SetWeight(ctx, 10); err != nil || router.weight != 10 {
			t.Fatalf("set weight: %v, router at %d", err, router.weight)
		}
		v, err := e.Analyse(ctx)
		if err != nil || v.Outcome != deploy.Unhealthy {
			t.Fatalf("verdict %+v, %v", v, err)
		}
		var asked []string
		for _, m := range provider.asked.Metrics {
			asked = append(asked, m.Name)
		}
		if !slices.Equal(asked, []string{metrics.ErrorRate, metrics.Requests}) || !provider.asked.Samples || provider.asked.Router.Stable != "blue" {
			t.Errorf("provider asked for %v, samples %v, router %+v", asked, provider.asked.Samples, provider.asked.Router)
		}
	})
	for _, tt := range []struct {
		what  string
		names []string
	}{{"routers", deploy.Routers()}, {"providers", deploy.Providers()}, {"judges", deploy.Judges()}} {
		if slices.Contains(tt.names, "fake") {
			t.Errorf("%s still has the test's module: %v", tt.what, tt.names)
		}
	}
}
