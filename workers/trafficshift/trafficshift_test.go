package trafficshift_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/sluice-ci/sluice/coordinator"
	"github.com/sluice-ci/sluice/deploy/proxy"
	"github.com/sluice-ci/sluice/internal/bus"
	"github.com/sluice-ci/sluice/internal/bus/bustest"
	"github.com/sluice-ci/sluice/internal/testdir"
	sluicev1 "github.com/sluice-ci/sluice/proto/sluice/v1"
	"github.com/sluice-ci/sluice/workers"
	"github.com/sluice-ci/sluice/workers/trafficshift"
)

// These tests run whole rollouts with real HTTP traffic: a client sends requests through the
// builtin weighted proxy to a stable and a canary backend, while a real coordinator hands
// the rollout's actions to a real worker running this package's handler.

// fault is how a backend misbehaves; it can change while the backend serves.
type fault struct {
	// errorEvery makes every n-th request a 500, emptyEvery every n-th an empty 200 (0: never),
	// counting from the first request: a step that reaches the canary with fewer than n
	// requests (a loaded machine slows the clients) still sees the fault at its rate or
	// above, where a fault at the n-th request would not show at all.
	errorEvery, emptyEvery atomic.Int64
	// delay is added to every request.
	delay atomic.Int64
}

// backend answers "ok" after its fault's delay, misbehaving as the fault says.
func backend(t testing.TB, f *fault) *httptest.Server {
	var n atomic.Int64
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		i := n.Add(1)
		time.Sleep(time.Duration(f.delay.Load()))
		if every := f.errorEvery.Load(); every > 0 && (i-1)%every == 0 {
			http.Error(w, "boom", http.StatusInternalServerError)
			return
		}
		if every := f.emptyEvery.Load(); every > 0 && (i-1)%every == 0 {
			return
		}
		_, _ = io.WriteString(w, "ok\n")
	}))
	t.Cleanup(s.Close)
	return s
}

// startSluice starts a real coordinator and a real traffic-shift worker running h on a real
// in-process server, all stopped when the test ends.
func startSluice(t testing.TB, h trafficshift.Handler) *coordinator.Client {
	t.Helper()
	env := bustest.Start(t, bus.Config{})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	c, err := coordinator.New(env.NC, coordinator.Config{Names: env.Config.Names, Bus: env.Config, Logger: bustest.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	wg.Go(func() { _ = c.Run(ctx) })
	reg := workers.NewRegistry()
	reg.Register(sluicev1.StageKind_STAGE_KIND_TRAFFIC_SHIFT, h)
	w, err := workers.New(env.NC, workers.Config{
		Bus: env.Config, Kinds: []sluicev1.StageKind{sluicev1.StageKind_STAGE_KIND_TRAFFIC_SHIFT},
		Registry: reg, Logger: bustest.Logger(), CacheDir: t.TempDir(), WorkDir: testdir.Reachable(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	wg.Go(func() { _ = w.Run(ctx) })
	<-c.Ready()
	return coordinator.NewClient(env.NC, env.Config.Names)
}

type rig struct {
	proxy *proxy.Proxy
	// stable and canary are the backends' faults.
	stable, canary fault
	admin          string
	client         *coordinator.Client
	// Requests and errors the traffic client saw.
	sent, failed atomic.Int64
}

func start(t testing.TB, canaryErrorEvery int64) *rig {
	t.Helper()
	r := &rig{}
	r.canary.errorEvery.Store(canaryErrorEvery)
	stable, canary := backend(t, &r.stable), backend(t, &r.canary)
	su, _ := url.Parse(stable.URL)
	cu, _ := url.Parse(canary.URL)
	p, err := proxy.New(proxy.Config{Stable: su, Canary: cu})
	if err != nil {
		t.Fatal(err)
	}
	front := httptest.NewServer(p)
	admin := httptest.NewServer(p.AdminHandler())
	t.Cleanup(front.Close)
	t.Cleanup(admin.Close)
	r.proxy, r.admin = p, admin.URL

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	r.client = startSluice(t, trafficshift.Handler{})

	// Steady traffic through the proxy from 8 clients, about 500 requests a second in all
	// whatever the backends' latency, for the whole test: each client waits for its
	// response, so a loaded machine slows fewer clients below the rate the faults' rates
	// need (a 2% fault at 10% of the traffic is one bad response in 100 to the canary).
	for range 8 {
		wg.Go(func() {
			tick := time.NewTicker(16 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
					r.get(ctx, front.URL)
				}
			}
		})
	}
	return r
}

// get sends one request through the proxy, counting what the client sees.
func (r *rig) get(ctx context.Context, url string) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return
	}
	resp, err := http.DefaultClient.Do(req)
	if ctx.Err() != nil {
		return
	}
	r.sent.Add(1)
	if err != nil {
		r.failed.Add(1)
		return
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode >= 500 {
		r.failed.Add(1)
	}
}

func (r *rig) spec(mutate ...func(*sluicev1.RolloutSpec)) *sluicev1.PipelineSpec {
	pause := durationpb.New(2 * time.Second)
	ro := &sluicev1.RolloutSpec{
		Router: &sluicev1.RouterSpec{Type: "builtin", Admin: r.admin},
		Steps:  []*sluicev1.RolloutStep{{Weight: 10, Pause: pause}, {Weight: 50, Pause: pause}, {Weight: 100}},
		Analysis: &sluicev1.AnalysisSpec{
			Interval: durationpb.New(time.Second),
			Provider: &sluicev1.ProviderSpec{Type: "builtin"},
			Metrics:  []*sluicev1.MetricSpec{{Name: "error_rate", Max: proto.Float64(0.01)}},
			Judge:    &sluicev1.JudgeSpec{Type: "thresholds", MinSamples: 10},
		},
		OnFailure: "rollback",
	}
	for _, m := range mutate {
		m(ro)
	}
	return &sluicev1.PipelineSpec{Version: 1, Name: "shop", Stages: []*sluicev1.StageSpec{{
		Name: "production", Kind: sluicev1.StageKind_STAGE_KIND_TRAFFIC_SHIFT, Shards: 1,
		Timeout: durationpb.New(time.Minute), Rollout: ro,
	}}}
}

func (r *rig) run(t testing.TB, spec *sluicev1.PipelineSpec) *sluicev1.RunState {
	t.Helper()
	st, err := r.client.Submit(t.Context(), &sluicev1.SubmitRunRequest{Spec: spec, Ref: "main"})
	if err != nil {
		t.Fatal(err)
	}
	return r.wait(t, st.GetId())
}

func (r *rig) wait(t testing.TB, id string) *sluicev1.RunState {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		st, err := r.client.Get(t.Context(), id)
		if err == nil && st.GetStatus().Terminal() {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("run %s did not finish: %v", id, st)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestHealthyCanaryIsPromoted(t *testing.T) {
	r := start(t, 0)
	st := r.run(t, r.spec())
	ro := st.GetStages()[0].GetRollout()
	if st.GetStatus() != sluicev1.RunStatus_RUN_STATUS_PASSED || ro.GetPhase() != sluicev1.RolloutPhase_ROLLOUT_PHASE_PROMOTED {
		t.Fatalf("run %s, rollout %v: %s", st.GetStatus().Short(), ro.GetPhase(), st.GetStages()[0].GetMessage())
	}
	if w := r.proxy.Weight(); w != 100 {
		t.Fatalf("proxy weight %d after promotion, want 100", w)
	}
	for _, v := range ro.GetVerdicts() {
		if v.GetVerdict().GetOutcome() == sluicev1.VerdictOutcome_VERDICT_OUTCOME_UNHEALTHY {
			t.Fatalf("a healthy canary got an unhealthy verdict: %v", v)
		}
	}
	if n := r.failed.Load(); n != 0 {
		t.Fatalf("clients saw %d errors of %d requests", n, r.sent.Load())
	}
}

func TestCanaryFailingFivePercentIsRolledBackAtTheFirstStep(t *testing.T) {
	r := start(t, 20)
	st := r.run(t, r.spec())
	ro := st.GetStages()[0].GetRollout()
	if st.GetStatus() != sluicev1.RunStatus_RUN_STATUS_FAILED || ro.GetPhase() != sluicev1.RolloutPhase_ROLLOUT_PHASE_ROLLED_BACK {
		t.Fatalf("run %s, rollout %v", st.GetStatus().Short(), ro.GetPhase())
	}
	if w := r.proxy.Weight(); w != 0 {
		t.Fatalf("proxy weight %d after the rollback, want 0", w)
	}
	if len(ro.GetVerdicts()) != 1 || ro.GetVerdicts()[0].GetWeight() != 10 {
		t.Fatalf("verdicts %v: the fault must be caught at 10%%", ro.GetVerdicts())
	}
	m := ro.GetVerdicts()[0].GetVerdict().GetMetrics()
	if len(m) == 0 || m[0].GetName() != "error_rate" || m[0].GetCanary() < 0.02 || m[0].GetLimit() != 0.01 {
		t.Fatalf("verdict numbers %v", m)
	}
	t.Logf("clients saw %d errors of %d requests (the canary had 10%% of them for about one interval)", r.failed.Load(), r.sent.Load())
}

func TestManualRollbackMidAnalysis(t *testing.T) {
	r := start(t, 0)
	spec := r.spec(func(ro *sluicev1.RolloutSpec) { ro.Steps[0].Pause = durationpb.New(time.Minute) })
	st, err := r.client.Submit(t.Context(), &sluicev1.SubmitRunRequest{Spec: spec, Ref: "main"})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for r.proxy.Weight() != 10 {
		if time.Now().After(deadline) {
			t.Fatal("the canary never reached 10%")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := r.client.Rollback(t.Context(), st.GetId(), "checkout errors"); err != nil {
		t.Fatal(err)
	}
	final := r.wait(t, st.GetId())
	ro := final.GetStages()[0].GetRollout()
	if ro.GetPhase() != sluicev1.RolloutPhase_ROLLOUT_PHASE_ROLLED_BACK || r.proxy.Weight() != 0 {
		t.Fatalf("rollout %v, weight %d", ro.GetPhase(), r.proxy.Weight())
	}
	if who := r.client.Identity().Principal(); !strings.Contains(ro.GetReason(), who) {
		t.Fatalf("reason %q does not say who (%s)", ro.GetReason(), who)
	}
	if got := final.GetStages()[0].GetFinishedAt().AsTime().Sub(final.GetStages()[0].GetStartedAt().AsTime()); got > 30*time.Second {
		t.Fatalf("the rollback waited for the minute-long analysis (%s)", got)
	}
}

// BenchmarkRollbackAfterFaultOnset measures, with `interval: 1s`, the time from the moment a
// canary at 10% starts failing 5% of its requests to its weight being 0 on the router. Run
// it with -benchtime=20x for the 20 trials of the issue.
func BenchmarkRollbackAfterFaultOnset(b *testing.B) {
	r := start(b, 0)
	spec := r.spec(func(ro *sluicev1.RolloutSpec) { ro.Steps[0].Pause = durationpb.New(time.Minute) })
	var lat []time.Duration
	for i := 0; b.Loop(); i++ {
		r.canary.errorEvery.Store(0)
		st, err := r.client.Submit(b.Context(), &sluicev1.SubmitRunRequest{Spec: spec, Ref: "main"})
		if err != nil {
			b.Fatal(err)
		}
		for r.proxy.Weight() != 10 {
			time.Sleep(2 * time.Millisecond)
		}
		// Onsets spread over an analysis interval, so the median is not an artefact of
		// where the interval boundaries fall.
		time.Sleep(time.Duration(i%10) * 100 * time.Millisecond)
		onset := time.Now()
		r.canary.errorEvery.Store(20)
		for r.proxy.Weight() != 0 {
			time.Sleep(2 * time.Millisecond)
		}
		lat = append(lat, time.Since(onset))
		r.wait(b, st.GetId())
	}
	slices.Sort(lat)
	b.Logf("fault onset to weight 0, sorted: %v", lat)
	b.ReportMetric(lat[len(lat)/2].Seconds(), "median-s")
	b.ReportMetric(lat[len(lat)-1].Seconds(), "max-s")
	b.ReportMetric(0, "ns/op")
}

// Each bad canary of the seeds' rules is rolled back at the first step, within two analysis
// intervals, by the rule its fault breaks, while clients keep being served (mostly by stable).
func TestEachBadCanaryIsRolledBackAtTheFirstStep(t *testing.T) {
	tests := []struct {
		name    string
		breakIt func(r *rig)
		metric  string
	}{
		{"5% 5xx", func(r *rig) { r.canary.errorEvery.Store(20) }, "error_rate"},
		{"3x latency", func(r *rig) { r.canary.delay.Store(int64(30 * time.Millisecond)) }, "latency"},
		{"2% empty bodies", func(r *rig) { r.canary.emptyEvery.Store(50) }, "null_response_rate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := start(t, 0)
			// A service's own latency, so a latency ratio measures the service, not noise.
			r.stable.delay.Store(int64(10 * time.Millisecond))
			r.canary.delay.Store(int64(10 * time.Millisecond))
			tt.breakIt(r)
			st := r.run(t, r.spec(seedRules))
			ro := st.GetStages()[0].GetRollout()
			if ro.GetPhase() != sluicev1.RolloutPhase_ROLLOUT_PHASE_ROLLED_BACK || r.proxy.Weight() != 0 {
				t.Fatalf("rollout %v, weight %d: %s", ro.GetPhase(), r.proxy.Weight(), st.GetStages()[0].GetMessage())
			}
			v := ro.GetVerdicts()[len(ro.GetVerdicts())-1]
			if v.GetWeight() != 10 || v.GetVerdict().GetIntervals() > 2 {
				t.Fatalf("caught at %d%% after %d intervals: want the first step within two", v.GetWeight(), v.GetVerdict().GetIntervals())
			}
			tripped := false
			for _, m := range v.GetVerdict().GetMetrics() {
				tripped = tripped || strings.HasPrefix(m.GetName(), tt.metric) && m.GetOutcome() == sluicev1.VerdictOutcome_VERDICT_OUTCOME_UNHEALTHY
			}
			if !tripped {
				t.Fatalf("no %s check was unhealthy: the fault must trip its own rule; verdict %v", tt.metric, v.GetVerdict().GetMetrics())
			}
			t.Logf("%s: %s; clients saw %d errors of %d requests", tt.name, v.GetVerdict().GetMessage(), r.failed.Load(), r.sent.Load())
		})
	}
}

// seedRules are the seeds' rollback rules: error rate over 1.5x the stable baseline, p95
// latency over 2x, more than 1% null responses; plus a rank test on the latency samples,
// which a starved CPU's scheduling spikes do not fool the way they fool a p95 of a few dozen.
func seedRules(ro *sluicev1.RolloutSpec) {
	ro.Analysis.Metrics = []*sluicev1.MetricSpec{
		{Name: "error_rate", MaxRatioToBaseline: proto.Float64(1.5)},
		{Name: "latency_p95", MaxRatioToBaseline: proto.Float64(2.0)},
		{Name: "null_response_rate", Max: proto.Float64(0.01)},
	}
	ro.Analysis.Judge = &sluicev1.JudgeSpec{Type: "mann-whitney", Confidence: 0.98, MinSamples: 10, MaxEffectSize: 2.0}
}

// A healthy canary is never rolled back: 20 short rollouts in a row under the seeds' rules,
// with failure_limit 2, all promote, even while other tests load the machine.
func TestNoFalseRollbacksOfAHealthyCanary(t *testing.T) {
	r := start(t, 0)
	r.stable.delay.Store(int64(10 * time.Millisecond))
	r.canary.delay.Store(int64(10 * time.Millisecond))
	spec := r.spec(seedRules, func(ro *sluicev1.RolloutSpec) {
		ro.Steps = []*sluicev1.RolloutStep{{Weight: 10, Pause: durationpb.New(time.Second)}, {Weight: 100}}
		// A p95 over a few dozen samples on a loaded 2-core machine spikes now and then; two
		// unhealthy intervals in a row are a fault, one is noise.
		ro.Analysis.FailureLimit = 2
	})
	for i := range 20 {
		st := r.run(t, spec)
		if ro := st.GetStages()[0].GetRollout(); ro.GetPhase() != sluicev1.RolloutPhase_ROLLOUT_PHASE_PROMOTED {
			t.Fatalf("rollout %d: %v: %s", i+1, ro.GetPhase(), ro.GetReason())
		}
		if err := r.proxy.SetWeight(0); err != nil {
			t.Fatal(err)
		}
	}
}
