package deploy_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/sluice-ci/sluice/deploy"
	"github.com/sluice-ci/sluice/deploy/proxy"
	"github.com/sluice-ci/sluice/internal/realtest"
	sluicev1 "github.com/sluice-ci/sluice/proto/sluice/v1"
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
		spec *sluicev1.RouterSpec
	}{
		{"nginx", &sluicev1.RouterSpec{Type: "nginx", Config: n.UpstreamConf, Upstream: "app", Stable: "blue", Canary: "green"}},
		{"haproxy", &sluicev1.RouterSpec{Type: "haproxy", Socket: h.Socket, Backend: "app", Stable: "blue", Canary: "green"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e, err := deploy.New(&sluicev1.RolloutSpec{Router: tt.spec}, deploy.Options{NginxBin: n.Bin, NginxArgs: n.Args})
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
			a.Provider = &sluicev1.ProviderSpec{Type: "prometheus", Url: prom.URL}
			e, err := deploy.New(&sluicev1.RolloutSpec{
				Router:   &sluicev1.RouterSpec{Type: "builtin", Admin: tt.admin, Stable: tt.stable, Canary: tt.canary},
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
	e, err := deploy.New(&sluicev1.RolloutSpec{
		Router: &sluicev1.RouterSpec{Type: "builtin", Admin: "127.0.0.1:1"},
		Deploy: &sluicev1.DeploySpec{Health: &sluicev1.HealthCheck{Url: "http://127.0.0.1:1/healthz"}},
		Analysis: &sluicev1.AnalysisSpec{
			Interval: durationpb.New(5 * time.Second),
			Judge:    &sluicev1.JudgeSpec{Type: "mann-whitney"},
		},
	}, deploy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if e.Interval != 5*time.Second || e.HealthTimeout != deploy.DefaultHealthTimeout || e.RankTest == nil || e.Provider == nil {
		t.Errorf("engine %+v", e)
	}
}
