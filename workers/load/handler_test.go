package load_test

import (
	"encoding/json"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/sluice-ci/sluice/examples/app"
	"github.com/sluice-ci/sluice/loadtest"
	sluicev1 "github.com/sluice-ci/sluice/proto/sluice/v1"
	"github.com/sluice-ci/sluice/workers"
	"github.com/sluice-ci/sluice/workers/load"
	"github.com/sluice-ci/sluice/workers/workertest"
)

const kind = sluicev1.StageKind_STAGE_KIND_LOAD

func k6(tb testing.TB) string {
	tb.Helper()
	p, err := loadtest.FindK6()
	if err != nil {
		if os.Getenv("CI") == "true" {
			tb.Fatalf("the load test tier needs k6 %s: %v (run `make bin/k6`)", loadtest.K6Version, err)
		}
		tb.Skipf("SKIPPING the load test tier: %v (run `make bin/k6`)", err)
	}
	return p
}

// fleet is a real worker serving the load kind, with the example app as the source tree.
type fleet struct {
	*workertest.Fleet
	digest string
}

func startFleet(tb testing.TB, h load.Handler) *fleet {
	tb.Helper()
	reg := workers.NewRegistry()
	reg.Register(kind, h)
	f := workertest.Start(tb, reg, kind)
	return &fleet{Fleet: f, digest: f.UploadDir(tb, "../../examples/app")}
}

// run queues a load task as the coordinator does and returns its final result.
func (f *fleet) run(tb testing.TB, runID string, spec *sluicev1.LoadSpec) *sluicev1.Result {
	tb.Helper()
	return f.Run(tb, &sluicev1.Task{
		RunId: runID, Pipeline: "web", Stage: "load", Kind: kind, SourceDigest: f.digest,
		Spec: &sluicev1.StageSpec{Name: "load", Kind: kind, Load: spec},
	})
}

func metric(res *sluicev1.Result, name string) (float64, bool) {
	for _, m := range res.GetMetrics() {
		if m.GetName() == name {
			return m.GetValue(), true
		}
	}
	return 0, false
}

func TestHandlerThroughWorker(t *testing.T) {
	f := startFleet(t, load.Handler{K6: k6(t)})
	srv := httptest.NewServer(app.NewHandler("v1"))
	defer srv.Close()
	short := func(th map[string][]string) *sluicev1.LoadSpec {
		s := &sluicev1.LoadSpec{Script: "loadtest/api.js", Vus: 2, Duration: durationpb.New(2 * time.Second), Target: srv.URL}
		if th != nil {
			s.Thresholds = map[string]*sluicev1.ThresholdList{}
			for m, e := range th {
				s.Thresholds[m] = &sluicev1.ThresholdList{Expressions: e}
			}
		}
		return s
	}
	tests := []struct {
		name        string
		spec        *sluicev1.LoadSpec
		wantOutcome sluicev1.Outcome
		wantMsg     string
	}{
		{"passes", short(map[string][]string{"http_req_duration": {"p(95)<5000"}}), sluicev1.Outcome_OUTCOME_PASSED, "thresholds passed"},
		{"thresholds crossed", short(map[string][]string{"http_req_duration": {"p(95)<0.001"}}), sluicev1.Outcome_OUTCOME_FAILED,
			"thresholds crossed: http_req_duration p(95)<0.001 (p(95)="},
		{"script outside the tree", &sluicev1.LoadSpec{Script: "../etc/x.js"}, sluicev1.Outcome_OUTCOME_ERROR, "inside the source tree"},
		{"missing script", &sluicev1.LoadSpec{Script: "loadtest/nope.js", Target: srv.URL}, sluicev1.Outcome_OUTCOME_FAILED, "loadtest/nope.js"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := f.run(t, strings.ReplaceAll(tt.name, " ", "-"), tt.spec)
			if res.GetOutcome() != tt.wantOutcome || !strings.Contains(res.GetMessage(), tt.wantMsg) {
				t.Fatalf("result %s %q, want %s containing %q", res.GetOutcome(), res.GetMessage(), tt.wantOutcome, tt.wantMsg)
			}
			if tt.wantOutcome == sluicev1.Outcome_OUTCOME_ERROR || strings.Contains(tt.name, "missing") {
				return
			}
			for _, name := range []string{"http_reqs", "http_req_rate", "http_req_duration_p95", "http_req_duration_p99", "iterations"} {
				if v, ok := metric(res, name); !ok || v <= 0 {
					t.Errorf("metric %s: %v, %v; want > 0", name, v, ok)
				}
			}
			var summary map[string]any
			if err := json.Unmarshal(f.Artifact(t, res, load.SummaryArtifact), &summary); err != nil || summary["metrics"] == nil {
				t.Errorf("summary artifact is not handleSummary data: %v", err)
			}
			if tt.wantOutcome == sluicev1.Outcome_OUTCOME_FAILED {
				if len(res.GetFindings()) != 1 || res.GetFindings()[0].GetProperties()["metric"] != "http_req_duration" || res.GetExitCode() != 99 {
					t.Errorf("want one finding on http_req_duration and exit 99: %v, exit %d", res.GetFindings(), res.GetExitCode())
				}
			}
		})
	}
}

func TestHandlerMissingK6(t *testing.T) {
	f := startFleet(t, load.Handler{K6: filepath.Join(t.TempDir(), "k6")})
	res := f.run(t, "nok6", &sluicev1.LoadSpec{Script: "loadtest/api.js"})
	if res.GetOutcome() != sluicev1.Outcome_OUTCOME_ERROR || !strings.Contains(res.GetMessage(), "make bin/k6") {
		t.Errorf("result %s %q, want ERROR saying make bin/k6", res.GetOutcome(), res.GetMessage())
	}
}

func TestHandlerRefusedTarget(t *testing.T) {
	f := startFleet(t, load.Handler{K6: k6(t)})
	srv := httptest.NewServer(app.NewHandler("v1"))
	target := srv.URL
	srv.Close()
	res := f.run(t, "refused", &sluicev1.LoadSpec{Script: "loadtest/api.js", Target: target})
	if res.GetOutcome() != sluicev1.Outcome_OUTCOME_FAILED || !strings.Contains(res.GetMessage(), "connection refused") {
		t.Errorf("result %s %q, want FAILED saying connection refused", res.GetOutcome(), res.GetMessage())
	}
}
