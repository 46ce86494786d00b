package coordinator

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/sluice-ci/sluice/internal/bus"
	"github.com/sluice-ci/sluice/internal/bus/bustest"
	"github.com/sluice-ci/sluice/internal/realtest"
	sluicev1 "github.com/sluice-ci/sluice/proto/sluice/v1"
)

// scrape reads the coordinator's /metrics as Prometheus does, and checks the names against
// Prometheus's conventions (promlint).
func scrape(t *testing.T, h http.Handler) map[string]*dto.MetricFamily {
	t.Helper()
	srv := httptest.NewServer(h)
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: %s: %s", resp.Status, body)
	}
	problems, err := promlint.New(bytes.NewReader(body)).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("metric %s: %s", p.Metric, p.Text)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return families
}

// value is the sample of family name whose labels include want; -1 when there is none.
func value(families map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	f := families[name]
	if f == nil {
		return -1
	}
next:
	for _, m := range f.GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if labels[k] != v {
				continue next
			}
		}
		switch {
		case m.GetCounter() != nil:
			return m.GetCounter().GetValue()
		case m.GetGauge() != nil:
			return m.GetGauge().GetValue()
		case m.GetHistogram() != nil:
			return float64(m.GetHistogram().GetSampleCount())
		}
	}
	return -1
}

// The coordinator's /metrics counts what its runs did (stages by kind and outcome, runs,
// durations, dispatch latency, dropped forgeries) and shows what is there now (queues of a
// kind no worker serves, a canary's weight mid-rollout).
func TestMetricsCountRunsStagesQueuesAndRollouts(t *testing.T) {
	env := bustest.Start(t, bus.Config{})
	c, _ := startCoordinator(t, env)
	startWorker(t, env, func(task *sluicev1.Task) *sluicev1.Result {
		if task.GetStage() == "bad" {
			return &sluicev1.Result{Outcome: sluicev1.Outcome_OUTCOME_FAILED, Worker: "scripted", Delivery: 1}
		}
		return pass(task)
	})
	startKindWorker(t, env, sluicev1.StageKind_STAGE_KIND_TRAFFIC_SHIFT, func(task *sluicev1.Task) *sluicev1.Result {
		a := task.GetRollout()
		if a.GetAction() == sluicev1.RolloutAction_ROLLOUT_ACTION_ANALYSE {
			if a.GetWeight() == 50 {
				return nil // held: the rollout stays at 50%
			}
			return &sluicev1.Result{Outcome: sluicev1.Outcome_OUTCOME_PASSED, Worker: "ts", Verdict: healthy()}
		}
		return &sluicev1.Result{Outcome: sluicev1.Outcome_OUTCOME_PASSED, Worker: "ts"}
	})
	good := submit(t, env, "main", stage("a"), stage("b", "a"))
	bad := submit(t, env, "main", stage("bad"))
	waitRun(t, env, good.GetId(), sluicev1.RunStatus_RUN_STATUS_PASSED)
	waitRun(t, env, bad.GetId(), sluicev1.RunStatus_RUN_STATUS_FAILED)

	// A test task whose consumer exists but has no worker pulling: it stays queued.
	if _, err := bus.WorkerConsumer(t.Context(), env.JS, env.Config, "test", "default", 10); err != nil {
		t.Fatal(err)
	}
	testStage := stage("unit")
	testStage.Kind = sluicev1.StageKind_STAGE_KIND_TEST
	submit(t, env, "main", testStage)
	rollout := submit(t, env, "main", rolloutStage())
	waitFor(t, "the rollout to reach 50%", func() bool {
		st, err := c.GetRun(t.Context(), rollout.GetId())
		return err == nil && st.GetStages()[0].GetRollout().GetWeight() == 50
	})
	// A result without a valid proof (of an attempt never dispatched, so the server does not
	// take it for a repeat of the real one): dropped, and counted.
	publishResult(t, env, &sluicev1.Result{RunId: good.GetId(), Stage: "a", Attempt: 7, Phase: sluicev1.ResultPhase_RESULT_PHASE_FINAL, Outcome: sluicev1.Outcome_OUTCOME_PASSED}, []byte("not the lease"))
	waitFor(t, "the forged result to be dropped", func() bool { return c.Stats().Forged == 1 })

	var families map[string]*dto.MetricFamily
	waitFor(t, "the queued test task to show", func() bool {
		families = scrape(t, c.Handler())
		return value(families, MetricQueueDepth, map[string]string{"kind": "test", "pool": "default"}) == 1
	})
	for _, want := range []struct {
		name   string
		labels map[string]string
		v      float64
	}{
		{MetricStages, map[string]string{"kind": "static", "outcome": "passed"}, 2},
		{MetricStages, map[string]string{"kind": "static", "outcome": "failed"}, 1},
		{MetricStageDuration, map[string]string{"kind": "static", "outcome": "passed"}, 2},
		{MetricRuns, map[string]string{"outcome": "passed"}, 1},
		{MetricRuns, map[string]string{"outcome": "failed"}, 1},
		{MetricRunsActive, nil, 2},
		{MetricDispatch, map[string]string{"kind": "static", "pool": "default"}, 3},
		{MetricRejected, map[string]string{"reason": "forged"}, 1},
		{MetricRejected, map[string]string{"reason": "undecodable"}, 0},
		{MetricQueueInFlight, map[string]string{"kind": "test", "pool": "default"}, 0},
		{MetricCanaryWeight, map[string]string{"run": rollout.GetId(), "stage": "production"}, 0.5},
		{MetricVerdicts, map[string]string{"verdict": "healthy"}, 1},
		{MetricRollbacks, nil, 0},
	} {
		if got := value(families, want.name, want.labels); got != want.v {
			t.Errorf("%s%v = %v, want %v", want.name, want.labels, got, want.v)
		}
	}
	if t.Failed() {
		var names []string
		for n := range families {
			names = append(names, n)
		}
		sort.Strings(names)
		t.Logf("families: %s", strings.Join(names, " "))
	}
}

// dashboardQueries are the PromQL expressions of the Grafana dashboard in the repository.
func dashboardQueries(t *testing.T) []string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "dashboards", "sluice.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(data, &dash); err != nil {
		t.Fatalf("dashboards/sluice.json: %v", err)
	}
	var exprs []string
	for _, p := range dash.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			exprs = append(exprs, tg.Expr)
		}
	}
	return exprs
}

// Every query of the Grafana dashboard runs on a real Prometheus scraping a coordinator, and
// those over the coordinator's own metrics chart data: a renamed metric or a broken query
// fails here, not on an operator's screen.
func TestGrafanaDashboardQueriesRunOnPrometheus(t *testing.T) {
	exprs := dashboardQueries(t)
	env := bustest.Start(t, bus.Config{})
	c, _ := startCoordinator(t, env)
	startWorker(t, env, pass)
	srv := httptest.NewServer(c.Handler())
	defer srv.Close()
	prom := realtest.StartPrometheus(t, strings.TrimPrefix(srv.URL, "http://"))
	for range 3 {
		st := submit(t, env, "main", stage("a"), stage("b", "a"))
		waitRun(t, env, st.GetId(), sluicev1.RunStatus_RUN_STATUS_PASSED)
	}
	prom.WaitSamples(t, MetricStages, 3)
	for _, q := range exprs {
		n, err := prom.Query(q)
		if err != nil {
			t.Errorf("dashboard query: %v", err)
			continue
		}
		// Rollouts and workers are not part of this fleet; everything else has data.
		if n == 0 && !strings.Contains(q, "rollout") && !strings.Contains(q, "sluice_worker_") {
			t.Errorf("dashboard query %s charts nothing", q)
		}
	}
}
