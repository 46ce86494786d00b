package metrics_test

import (
	"context"
	"errors"
	"math"
	"net"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/sluice-ci/sluice/deploy/metrics"
	"github.com/sluice-ci/sluice/deploy/proxy"
	"github.com/sluice-ci/sluice/internal/realtest"
)

// router starts a real proxy between a healthy blue and a green with the given fault, at
// weight 50, and returns it with its traffic and admin servers.
func router(t *testing.T, green realtest.Fault) (front, admin *httptest.Server) {
	t.Helper()
	blue := realtest.StartBackend(t, "blue", realtest.Fault{})
	g := realtest.StartBackend(t, "green", green)
	bu, _ := url.Parse(blue.URL)
	gu, _ := url.Parse(g.URL)
	p, err := proxy.New(proxy.Config{Stable: bu, Canary: gu, StableName: "blue", CanaryName: "green", Weight: 50})
	if err != nil {
		t.Fatal(err)
	}
	front = httptest.NewServer(p)
	admin = httptest.NewServer(p.AdminHandler())
	t.Cleanup(front.Close)
	t.Cleanup(admin.Close)
	return front, admin
}

func near(got, want, tol float64) bool { return math.Abs(got-want) <= tol }

func TestBuiltinMeasuresAnInterval(t *testing.T) {
	front, admin := router(t, realtest.Fault{ErrorEvery: 10, EmptyEvery: 25, Delay: 2 * time.Millisecond})
	// Traffic before the interval must not count.
	realtest.StartTraffic(t, front.URL, time.Millisecond).Stop()
	tr := realtest.StartTraffic(t, front.URL, 2*time.Millisecond)
	p := &metrics.Builtin{Admin: admin.Listener.Addr().String()}
	pair, err := p.Measure(context.Background(), time.Second)
	tr.Stop()
	if err != nil {
		t.Fatal(err)
	}
	s, c := pair.Stable, pair.Canary
	if s.Backend != "blue" || c.Backend != "green" {
		t.Errorf("backends %q and %q", s.Backend, c.Backend)
	}
	n := c.Values[metrics.Requests]
	if n < 50 || s.Values[metrics.Requests] < 50 {
		t.Fatalf("too little traffic measured: %v / %v", s.Values, c.Values)
	}
	// Every 10th canary request fails and every 25th of the others is empty: within one
	// request of that over the interval, wherever it starts.
	if !near(c.Values[metrics.ErrorRate], 0.1, 1/n+1e-9) || s.Values[metrics.ErrorRate] != 0 {
		t.Errorf("error rates: canary %v, stable %v", c.Values[metrics.ErrorRate], s.Values[metrics.ErrorRate])
	}
	if got := c.Values[metrics.NullResponseRate]; got <= 0 || got > 0.04+2/n {
		t.Errorf("canary null rate %v", got)
	}
	if len(c.Latencies) != int(n) {
		t.Errorf("%d canary latency samples for %v requests", len(c.Latencies), n)
	}
	// The canary waits 2 ms per request; stable does not.
	if c.Values[metrics.LatencyP50] < 0.002 || s.Values[metrics.LatencyP50] >= c.Values[metrics.LatencyP50] {
		t.Errorf("p50 canary %v stable %v", c.Values[metrics.LatencyP50], s.Values[metrics.LatencyP50])
	}
	for _, name := range metrics.Known {
		if _, ok := c.Values[name]; !ok {
			t.Errorf("canary lacks %s", name)
		}
	}
}

// No traffic: the rates are absent (no data), never NaN.
func TestBuiltinIdle(t *testing.T) {
	_, admin := router(t, realtest.Fault{})
	p := &metrics.Builtin{Admin: "http://" + admin.Listener.Addr().String() + "/"}
	pair, err := p.Measure(context.Background(), 10*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if len(pair.Canary.Values) != 1 || pair.Canary.Values[metrics.Requests] != 0 {
		t.Errorf("idle canary values %v", pair.Canary.Values)
	}
}

func TestBuiltinErrors(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, admin := router(t, realtest.Fault{})
	if _, err := (&metrics.Builtin{Admin: admin.URL}).Measure(ctx, time.Hour); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled measure: %v", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := l.Addr().String()
	l.Close()
	if _, err := (&metrics.Builtin{Admin: dead}).Measure(context.Background(), 0); err == nil {
		t.Error("unreachable router: no error")
	}
	if _, err := metrics.Delta(proxy.BackendStats{Requests: 10}, proxy.BackendStats{Requests: 3}); !errors.Is(err, metrics.ErrCounterReset) {
		t.Errorf("counter reset: %v", err)
	}
}

func TestQuantile(t *testing.T) {
	s := []float64{1, 2, 3, 4, 5}
	for _, tt := range []struct{ q, want float64 }{{0, 1}, {0.5, 3}, {0.95, 4.8}, {1, 5}} {
		if got := metrics.Quantile(s, tt.q); !near(got, tt.want, 1e-12) {
			t.Errorf("q%v = %v, want %v", tt.q, got, tt.want)
		}
	}
	if metrics.Quantile(nil, 0.5) != 0 || metrics.Quantile([]float64{7}, 0.9) != 7 {
		t.Error("degenerate quantiles")
	}
}

// A real Prometheus scrapes a real router; the prometheus provider's default queries,
// templated with the backends' names, read the interval back.
func TestPrometheusReadsRouterMetrics(t *testing.T) {
	front, admin := router(t, realtest.Fault{ErrorEvery: 10, Delay: 5 * time.Millisecond})
	tr := realtest.StartTraffic(t, front.URL, 3*time.Millisecond)
	prom := realtest.StartPrometheus(t, admin.Listener.Addr().String())
	prom.WaitSamples(t, `sluice_router_requests_total{backend="green"}`, 3)

	queries := map[string]string{}
	for _, name := range metrics.Known {
		queries[name] = metrics.DefaultQueries[name]
	}
	p := &metrics.Prometheus{
		URL: prom.URL, StableName: "blue", CanaryName: "green",
		Queries: queries, SampleQuery: metrics.DefaultSampleQuery,
	}
	pair, err := p.Measure(context.Background(), 4*time.Second)
	tr.Stop()
	if err != nil {
		t.Fatal(err)
	}
	c, s := pair.Canary, pair.Stable
	t.Logf("canary %v (%d samples)", c.Values, len(c.Latencies))
	t.Logf("stable %v (%d samples)", s.Values, len(s.Latencies))
	if c.Values[metrics.Requests] < 100 || s.Values[metrics.Requests] < 100 {
		t.Fatalf("requests canary %v stable %v", c.Values[metrics.Requests], s.Values[metrics.Requests])
	}
	if !near(c.Values[metrics.ErrorRate], 0.1, 0.03) || s.Values[metrics.ErrorRate] != 0 {
		t.Errorf("error rate canary %v stable %v", c.Values[metrics.ErrorRate], s.Values[metrics.ErrorRate])
	}
	if s.Values[metrics.NullResponseRate] != 0 {
		t.Errorf("stable null rate %v", s.Values[metrics.NullResponseRate])
	}
	// 5 ms of delay puts the canary's median in the (5 ms, 10 ms] bucket.
	if p50 := c.Values[metrics.LatencyP50]; p50 < 0.005 || p50 > 0.010 || s.Values[metrics.LatencyP50] >= p50 {
		t.Errorf("p50 canary %v stable %v", p50, s.Values[metrics.LatencyP50])
	}
	if len(c.Latencies) < 100 || len(s.Latencies) < 100 {
		t.Errorf("samples rebuilt from the histogram: canary %d stable %d", len(c.Latencies), len(s.Latencies))
	}

	for name, q := range map[string]string{
		"two series":   `sluice_router_requests_total`,
		"bad promql":   `sum(`,
		"bad template": `{{.Nope}}`,
	} {
		bad := &metrics.Prometheus{URL: prom.URL, StableName: "blue", CanaryName: "green", Queries: map[string]string{"x": q}}
		if _, err := bad.Measure(context.Background(), 0); err == nil {
			t.Errorf("%s: no error", name)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
}
