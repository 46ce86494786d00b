package contract_test

import (
	"encoding/json"
	"maps"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/sluice-ci/sluice/examples/app"
	sluicev1 "github.com/sluice-ci/sluice/proto/sluice/v1"
	"github.com/sluice-ci/sluice/workers"
	"github.com/sluice-ci/sluice/workers/contract"
	"github.com/sluice-ci/sluice/workers/workertest"
)

const kind = sluicev1.StageKind_STAGE_KIND_CONTRACT

// fleet is a real worker serving the contract kind, with the example app as the source tree.
type fleet struct {
	*workertest.Fleet
	digest string
}

func startFleet(t *testing.T) *fleet {
	t.Helper()
	reg := workers.NewRegistry()
	contract.Register(reg)
	f := workertest.Start(t, reg, kind)
	return &fleet{Fleet: f, digest: f.UploadDir(t, "../../examples/app")}
}

// run queues a contract task as the coordinator does and returns its final result.
func (f *fleet) run(t *testing.T, runID string, spec *sluicev1.ContractSpec) *sluicev1.Result {
	t.Helper()
	return f.Run(t, &sluicev1.Task{
		RunId: runID, Pipeline: "web", Stage: "contract", Kind: kind, SourceDigest: f.digest,
		Spec: &sluicev1.StageSpec{Name: "contract", Kind: kind, Contract: spec},
	})
}

func (f *fleet) artifact(t *testing.T, res *sluicev1.Result, name string) string {
	t.Helper()
	return string(f.Artifact(t, res, name))
}

// statusDrift serves the example app with the status of a created payment changed to one
// its contract does not allow.
func statusDrift() http.Handler {
	inner := app.NewHandler("drifted")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := httptest.NewRecorder()
		inner.ServeHTTP(rec, r)
		out := rec.Body.Bytes()
		var body map[string]any
		if r.Method+" "+r.URL.Path == "POST /api/payments" && json.Unmarshal(out, &body) == nil {
			body["status"] = "ok"
			out, _ = json.Marshal(body)
		}
		maps.Copy(w.Header(), rec.Header())
		w.WriteHeader(rec.Code)
		_, _ = w.Write(out)
	})
}

func TestHandlerThroughWorker(t *testing.T) {
	f := startFleet(t)
	good := httptest.NewServer(app.NewHandler("v1"))
	defer good.Close()
	bad := httptest.NewServer(statusDrift())
	defer bad.Close()

	tests := []struct {
		name        string
		spec        *sluicev1.ContractSpec
		wantOutcome sluicev1.Outcome
		wantMsg     string
		wantFinding string // a finding's message holds it
		wantJUnit   string
	}{
		{"passes", &sluicev1.ContractSpec{Target: good.URL, Files: []string{"contracts/*.yaml"}},
			sluicev1.Outcome_OUTCOME_PASSED, "3 contracts passed", "", `failures="0"`},
		{"drift fails naming the field", &sluicev1.ContractSpec{Target: bad.URL, Files: []string{"contracts/payments.yaml"}},
			sluicev1.Outcome_OUTCOME_FAILED, `1 of 2 contracts failed: payments API, step "create a payment": body.status`,
			`body.status: want one of "succeeded", "pending", "failed", got "ok"`, `failures="1"`},
		{"invalid pattern", &sluicev1.ContractSpec{Target: good.URL, Files: []string{"contracts/nope-*.yaml"}},
			sluicev1.Outcome_OUTCOME_FAILED, `"contracts/nope-*.yaml" matches no file`, "", ""},
		{"no target", &sluicev1.ContractSpec{Files: []string{"contracts/*.yaml"}},
			sluicev1.Outcome_OUTCOME_ERROR, "no target", "", ""},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := f.run(t, "run"+string(rune('a'+i)), tt.spec)
			if res.GetOutcome() != tt.wantOutcome || !strings.Contains(res.GetMessage(), tt.wantMsg) {
				t.Fatalf("result %s %q, want %s containing %q", res.GetOutcome(), res.GetMessage(), tt.wantOutcome, tt.wantMsg)
			}
			if tt.wantFinding != "" {
				found := false
				for _, fd := range res.GetFindings() {
					found = found || (strings.Contains(fd.GetMessage(), tt.wantFinding) && fd.GetFile() == "contracts/payments.yaml" && fd.GetLine() > 0)
				}
				if !found {
					t.Errorf("no finding in contracts/payments.yaml saying %q: %v", tt.wantFinding, res.GetFindings())
				}
			}
			if tt.wantJUnit != "" {
				if junit := f.artifact(t, res, contract.JUnitArtifact); !strings.Contains(junit, tt.wantJUnit) {
					t.Errorf("JUnit artifact lacks %s:\n%s", tt.wantJUnit, junit)
				}
				f.artifact(t, res, contract.ReportArtifact)
			}
		})
	}
}

// Keep the refused-connection path covered end to end: the stage fails with the cause.
func TestHandlerRefusedTarget(t *testing.T) {
	f := startFleet(t)
	srv := httptest.NewServer(http.NotFoundHandler())
	target := srv.URL
	srv.Close()
	res := f.run(t, "refused", &sluicev1.ContractSpec{Target: target, Files: []string{"contracts/health.yaml"}})
	if res.GetOutcome() != sluicev1.Outcome_OUTCOME_FAILED || !strings.Contains(res.GetMessage(), "connection refused") {
		t.Errorf("result %s %q, want FAILED saying connection refused", res.GetOutcome(), res.GetMessage())
	}
}
