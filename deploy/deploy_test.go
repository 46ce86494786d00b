package deploy_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-ci/sluice/deploy"
	"github.com/sluice-ci/sluice/deploy/proxy"
	"github.com/sluice-ci/sluice/internal/realtest"
)

func f(v float64) *float64 { return &v }

// seedAnalysis is the seeds' analysis: error rate over 1.5x the baseline, latency over 2x,
// more than 1% null responses roll back; a Mann-Whitney test on latency besides.
func seedAnalysis(interval time.Duration) *deploy.Analysis {
	return &deploy.Analysis{
		Interval: interval,
		Provider: deploy.ProviderConfig{Type: "builtin"},
		Metrics: []deploy.Metric{
			{Name: "error_rate", MaxRatioToBaseline: f(1.5)},
			{Name: "latency_p95", MaxRatioToBaseline: f(2.0)},
			{Name: "null_response_rate", Max: f(0.01)},
		},
		Judge: deploy.JudgeConfig{Type: "mann-whitney", Confidence: 0.98, MinSamples: 50, MaxEffectSize: 1.5},
	}
}

func TestNewRejectsBadSpecs(t *testing.T) {
	good := func() deploy.Rollout {
		return deploy.Rollout{
			Router:   deploy.RouterConfig{Type: "builtin", Admin: "127.0.0.1:9091"},
			Analysis: seedAnalysis(time.Second),
		}
	}
	if _, err := deploy.New(good(), deploy.Options{}); err != nil {
		t.Fatalf("good spec: %v", err)
	}
	tests := []struct {
		name   string
		modify func(s *deploy.Rollout)
	}{
		{"empty", func(s *deploy.Rollout) { *s = deploy.Rollout{} }},
		{"no router type", func(s *deploy.Rollout) { s.Router.Type = "" }},
		{"unknown router", func(s *deploy.Rollout) { s.Router.Type = "istio" }},
		{"builtin without admin", func(s *deploy.Rollout) { s.Router.Admin = "" }},
		{"nginx without upstream", func(s *deploy.Rollout) {
			s.Router = deploy.RouterConfig{Type: "nginx", Config: "/etc/nginx/app.conf", Stable: "blue", Canary: "green"}
		}},
		{"haproxy without socket", func(s *deploy.Rollout) {
			s.Router = deploy.RouterConfig{Type: "haproxy", Backend: "app", Stable: "blue", Canary: "green"}
		}},
		{"unknown judge", func(s *deploy.Rollout) { s.Analysis.Judge.Type = "bayes" }},
		{"unknown provider", func(s *deploy.Rollout) { s.Analysis.Provider.Type = "datadog" }},
		{"unknown builtin metric", func(s *deploy.Rollout) { s.Analysis.Metrics[0].Name = "cpu" }},
		{"query on builtin", func(s *deploy.Rollout) { s.Analysis.Metrics[0].Query = "up" }},
		{"unnamed metric", func(s *deploy.Rollout) { s.Analysis.Metrics[0].Name = "" }},
		{"prometheus without url", func(s *deploy.Rollout) { s.Analysis.Provider.Type = "prometheus" }},
		{"prometheus metric without query", func(s *deploy.Rollout) {
			s.Analysis.Provider = deploy.ProviderConfig{Type: "prometheus", URL: "http://127.0.0.1:9090"}
			s.Analysis.Metrics[0].Name = "cpu"
		}},
		{"builtin provider without an address", func(s *deploy.Rollout) {
			s.Router = deploy.RouterConfig{Type: "haproxy", Socket: "/run/haproxy.sock", Backend: "app", Stable: "blue", Canary: "green"}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := good()
			tt.modify(&s)
			_, err := deploy.New(s, deploy.Options{})
			if !errors.Is(err, deploy.ErrSpec) {
				t.Errorf("err %v, want ErrSpec", err)
			}
		})
	}
}

// engine starts a real router between a stable backend and a canary with the given fault,
// steady traffic through it, and an engine driving it with the seeds' analysis.
func engine(t *testing.T, stable, canary realtest.Fault) (*deploy.Engine, *realtest.Traffic) {
	t.Helper()
	blue := realtest.StartBackend(t, "blue", stable)
	green := realtest.StartBackend(t, "green", canary)
	bu, _ := url.Parse(blue.URL)
	gu, _ := url.Parse(green.URL)
	p, err := proxy.New(proxy.Config{Stable: bu, Canary: gu, StableName: "blue", CanaryName: "green"})
	if err != nil {
		t.Fatal(err)
	}
	front := httptest.NewServer(p)
	admin := httptest.NewServer(p.AdminHandler())
	t.Cleanup(front.Close)
	t.Cleanup(admin.Close)
	e, err := deploy.New(deploy.Rollout{
		Router:   deploy.RouterConfig{Type: "builtin", Admin: admin.Listener.Addr().String(), Stable: "blue", Canary: "green"},
		Health:   deploy.Health{URL: green.URL, Timeout: 5 * time.Second},
		Analysis: seedAnalysis(2 * time.Second),
	}, deploy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	// Two clients, so the slow canary still serves well over min_samples in an interval.
	realtest.StartTraffic(t, front.URL, time.Millisecond)
	return e, realtest.StartTraffic(t, front.URL, time.Millisecond)
}

// One step of a rollout the way a traffic-shift worker runs it, for a healthy canary and
// for each of the seeds' bad canaries: wait healthy, shift to 50%, analyse one interval,
// roll back when unhealthy.
func TestEngineStep(t *testing.T) {
	base := realtest.Fault{Delay: 3 * time.Millisecond}
	tests := []struct {
		name   string
		canary realtest.Fault
		want   deploy.Outcome
		// failing names the checks that must be unhealthy.
		failing []string
	}{
		{"healthy", base, deploy.Healthy, nil},
		{"5% errors", realtest.Fault{Delay: 3 * time.Millisecond, ErrorEvery: 20}, deploy.Unhealthy, []string{"error_rate/max_ratio_to_baseline"}},
		// A p95 over a couple of hundred samples on a busy machine lands either side of 2x for
		// a 3x fault; the rank test on the whole distributions does not waver.
		{"3x latency", realtest.Fault{Delay: 9 * time.Millisecond}, deploy.Unhealthy, []string{"latency/mann-whitney"}},
		{"2% empty bodies", realtest.Fault{Delay: 3 * time.Millisecond, EmptyEvery: 50}, deploy.Unhealthy, []string{"null_response_rate/max"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			e, tr := engine(t, base, tt.canary)
			if err := e.WaitHealthy(ctx); err != nil {
				t.Fatal(err)
			}
			if err := e.SetWeight(ctx, 50); err != nil {
				t.Fatal(err)
			}
			v, err := e.Analyse(ctx)
			if err != nil {
				t.Fatal(err)
			}
			js, _ := json.Marshal(v)
			t.Logf("verdict %s: %s", v.Outcome, v.Reason)
			if v.Outcome != tt.want {
				t.Errorf("outcome %s, want %s: %s", v.Outcome, tt.want, js)
			}
			bad := map[string]bool{}
			for _, c := range v.Checks {
				if c.Outcome == deploy.Unhealthy {
					bad[c.Metric+"/"+c.Rule] = true
				}
			}
			for _, name := range tt.failing {
				if !bad[name] {
					t.Errorf("check %s not unhealthy: %s", name, js)
				}
			}
			if n := v.Numbers(); n["canary.requests"] < 100 || n["stable.requests"] < 100 {
				t.Errorf("verdict numbers %v", n)
			}
			if v.Outcome == deploy.Unhealthy {
				if err := e.Rollback(ctx); err != nil {
					t.Fatal(err)
				}
				if w, err := e.Weight(ctx); err != nil || w != 0 {
					t.Errorf("after rollback weight %d, %v", w, err)
				}
			}
			tr.Stop()
			t.Logf("one client saw %d failures in %d requests", tr.Failed.Load(), tr.Sent.Load())
		})
	}
}

func TestWaitHealthy(t *testing.T) {
	var polls atomic.Int32
	// Healthy from the third poll on, like a service still starting.
	starting := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if polls.Add(1) < 3 {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer starting.Close()
	never := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
	}))
	defer never.Close()

	ctx := context.Background()
	e := &deploy.Engine{HealthURL: starting.URL, HealthTimeout: 30 * time.Second}
	if err := e.WaitHealthy(ctx); err != nil || polls.Load() != 3 {
		t.Errorf("starting service: %v after %d polls", err, polls.Load())
	}
	e = &deploy.Engine{HealthURL: never.URL, HealthTimeout: 600 * time.Millisecond}
	err := e.WaitHealthy(ctx)
	if !errors.Is(err, deploy.ErrUnhealthy) {
		t.Errorf("never healthy: %v", err)
	}
	t.Logf("never healthy: %v", err)
	if err := (&deploy.Engine{}).WaitHealthy(ctx); !errors.Is(err, deploy.ErrSpec) {
		t.Errorf("no url: %v", err)
	}
}
