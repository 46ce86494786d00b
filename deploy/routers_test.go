package deploy_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/sluice-ci/sluice/deploy"
	"github.com/sluice-ci/sluice/deploy/judge"
	"github.com/sluice-ci/sluice/deploy/metrics"
	"github.com/sluice-ci/sluice/deploy/proxy"
	"github.com/sluice-ci/sluice/internal/realtest"
)

// The nginx and haproxy routers a spec names, built by New, set and read back the weight on
// real servers.
func TestEngineDrivesRealRouters(t *testing.T) {
	blue := realtest.StartBackend(t, "blue", realtest.Fault{})
	green := realtest.StartBackend(t, "green", realtest.Fault{})
	n := realtest.StartNginx(t, fmt.Sprintf("upstream app {\n\tserver 127.0.0.1:%d; # blue\n\tserver 127.0.0.1:%d down; # green\n}\n", blue.Port(), green.Port()))
	h := realtest.StartHAProxy(t, blue.Port(), green.Port())
	for _, tt := range []struct {
		name string
		spec deploy.RouterConfig
	}{
		{"nginx", deploy.RouterConfig{Type: "nginx", Config: n.UpstreamConf, Upstream: "app", Stable: "blue", Canary: "green"}},
		{"haproxy", deploy.RouterConfig{Type: "haproxy", Socket: h.Socket, Backend: "app", Stable: "blue", Canary: "green"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e, err := deploy.New(deploy.Rollout{Router: tt.spec}, deploy.Options{NginxBin: n.Bin, NginxArgs: n.Args})
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			for _, w := range []int{10, 50, 100} {
				if err := e.SetWeight(ctx, w); err != nil {
					t.Fatal(err)
				}
			}
			if err := e.Rollback(ctx); err != nil {
				t.Fatal(err)
			}
			if w, err := e.Weight(ctx); err != nil || w != 0 {
				t.Errorf("after rollback: %d, %v", w, err)
			}
		})
	}
}

// routerPair starts a real router named stable/canary in stats and metrics, with steady
// traffic at weight 50, and returns its admin address.
func routerPair(t *testing.T, stable, canary string, canaryFault realtest.Fault) string {
	t.Helper()
	s := realtest.StartBackend(t, stable, realtest.Fault{Delay: 2 * time.Millisecond})
	c := realtest.StartBackend(t, canary, canaryFault)
	su, _ := url.Parse(s.URL)
	cu, _ := url.Parse(c.URL)
	p, err := proxy.New(proxy.Config{Stable: su, Canary: cu, StableName: stable, CanaryName: canary, Weight: 50})
	if err != nil {
		t.Fatal(err)
	}
	front := httptest.NewServer(p)
	admin := httptest.NewServer(p.AdminHandler())
	t.Cleanup(front.Close)
	t.Cleanup(admin.Close)
	realtest.StartTraffic(t, front.URL, time.Millisecond)
	return admin.Listener.Addr().String()
}

// The seeds' analysis through a real Prometheus scraping two real routers, one with a
// healthy canary and one whose canary fails 5% of requests.
func TestEngineWithPrometheus(t *testing.T) {
	good := routerPair(t, "blue", "green", realtest.Fault{Delay: 2 * time.Millisecond})
	bad := routerPair(t, "blue-b", "green-b", realtest.Fault{Delay: 2 * time.Millisecond, ErrorEvery: 20})
	prom := realtest.StartPrometheus(t, good, bad)
	prom.WaitSamples(t, `sluice_router_requests_total{backend="green-b"}`, 3)

	for _, tt := range []struct {
		name, admin, stable, canary string
		want                        deploy.Outcome
	}{
		{"healthy", good, "blue", "green", deploy.Healthy},
		{"5% errors", bad, "blue-b", "green-b", deploy.Unhealthy},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a := seedAnalysis(3 * time.Second)
			a.Provider = deploy.ProviderConfig{Type: "prometheus", URL: prom.URL}
			e, err := deploy.New(deploy.Rollout{
				Router:   deploy.RouterConfig{Type: "builtin", Admin: tt.admin, Stable: tt.stable, Canary: tt.canary},
				Analysis: a,
			}, deploy.Options{})
			if err != nil {
				t.Fatal(err)
			}
			v, err := e.Analyse(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("verdict %s: %s", v.Outcome, v.Reason)
			if v.Outcome != tt.want {
				t.Errorf("outcome %s, want %s: %+v", v.Outcome, tt.want, v.Checks)
			}
			if n := v.Numbers(); n["canary.requests"] < 100 || n["latency.mann-whitney.canary_samples"] < 50 {
				t.Errorf("too little measured: %v", n)
			}
		})
	}
}

func TestDefaultsFromSpec(t *testing.T) {
	e, err := deploy.New(deploy.Rollout{
		Router: deploy.RouterConfig{Type: "builtin", Admin: "127.0.0.1:1"},
		Health: deploy.Health{URL: "http://127.0.0.1:1/healthz"},
		Analysis: &deploy.Analysis{
			Interval: 5 * time.Second,
			Judge:    deploy.JudgeConfig{Type: "mann-whitney"},
		},
	}, deploy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if e.Interval != 5*time.Second || e.HealthTimeout != deploy.DefaultHealthTimeout || e.Provider == nil {
		t.Errorf("engine %+v", e)
	}
	// The mann-whitney judge runs its rank test, inconclusive on an interval without samples.
	if v := e.Decide(metrics.Pair{}); len(v.Checks) != 1 || v.Checks[0].Rule != judge.RuleMannWhitney {
		t.Errorf("checks %+v, want the rank test alone", v.Checks)
	}
}
