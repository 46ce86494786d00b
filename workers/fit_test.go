package workers

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/url"
	"strings"
	"testing"

	sluicev1 "github.com/sluice-ci/sluice/proto/sluice/v1"
	"github.com/sluice-ci/sluice/workers/exec"
)

// TestResultsOverTheServerLimitKeepTheirOutcome: a handler reporting far more than the
// server's maximum payload gets its result through once, with its own outcome and a message
// saying what was left out; one that cannot be made to fit fails with the sizes, not after
// five deliveries as "no worker finished it".
func TestResultsOverTheServerLimitKeepTheirOutcome(t *testing.T) {
	h := newHarness(t)
	reg := DefaultRegistry()
	reg.Register(static, HandlerFunc(func(_ context.Context, t *Task) *sluicev1.Result {
		res := &sluicev1.Result{Outcome: sluicev1.Outcome_OUTCOME_FAILED, Message: "lint found problems"}
		switch t.Task.GetRunId() {
		case "many-findings":
			for i := range 100_000 {
				res.Findings = append(res.Findings, &sluicev1.Finding{Rule: "X-1", File: fmt.Sprintf("src/file%d.go", i), Line: int32(i), Message: strings.Repeat("m", 40)})
			}
		case "huge-detail":
			res.Detail = map[string]string{"dump": strings.Repeat("d", 3<<20)}
		}
		return res
	}))
	h.publish(t, newTask("many-findings", "true"))
	h.publish(t, newTask("huge-detail", "true"))
	h.start(t, Config{Registry: reg})

	res := h.final(t, "many-findings")
	if res.GetOutcome() != sluicev1.Outcome_OUTCOME_FAILED || res.GetDelivery() != 1 || !strings.Contains(res.GetMessage(), "left out of the result to fit") {
		t.Fatalf("many findings: %s at delivery %d: %q", res.GetOutcome(), res.GetDelivery(), res.GetMessage())
	}
	if n := len(res.GetFindings()); n == 0 || n > maxResultFindings {
		t.Fatalf("%d findings kept, want 1..%d", n, maxResultFindings)
	}
	res = h.final(t, "huge-detail")
	if res.GetOutcome() != sluicev1.Outcome_OUTCOME_ERROR || res.GetDelivery() != 1 || !strings.Contains(res.GetMessage(), "above the server's limit") {
		t.Fatalf("huge detail: %s at delivery %d: %q", res.GetOutcome(), res.GetDelivery(), res.GetMessage())
	}
}

// TestWhatAResultSaysIsMasked: a handler that quotes a secret (a database URL in its error,
// a finding's excerpt, an artifact) reports it masked in every form.
func TestWhatAResultSaysIsMasked(t *testing.T) {
	const dsn = "postgres://app:hunter2-very-secret@db:5432/app"
	h := newHarness(t)
	reg := DefaultRegistry()
	reg.Register(static, HandlerFunc(func(ctx context.Context, t *Task) *sluicev1.Result {
		v, _ := t.Secret("DATABASE_URL")
		ref, err := t.UploadArtifact(ctx, "report.txt", "text/plain", strings.NewReader("connected to "+url.QueryEscape(v)))
		if err != nil {
			return errorResult("%v", err)
		}
		return &sluicev1.Result{
			Outcome: sluicev1.Outcome_OUTCOME_FAILED, Message: "cannot reach " + v,
			Findings:  []*sluicev1.Finding{{Rule: "X", Excerpt: base64.StdEncoding.EncodeToString([]byte(v))}},
			Detail:    map[string]string{"dsn": v},
			Artifacts: []*sluicev1.ArtifactRef{ref},
		}
	}))
	task := newTask("masked", "true")
	task.Spec.Secrets = []string{"DATABASE_URL"}
	h.publish(t, task)
	h.start(t, Config{Registry: reg, Secrets: &Secrets{Grants: []SecretGrant{{Name: "DATABASE_URL"}},
		LookupEnv: func(string) (string, bool) { return dsn, true }}})
	res := h.final(t, "masked")
	said := res.GetMessage() + res.GetFindings()[0].GetExcerpt() + res.GetDetail()["dsn"]
	store, err := h.env.JS.ObjectStore(t.Context(), h.names.ArtifactsStore())
	if err != nil {
		t.Fatal(err)
	}
	art, err := store.GetBytes(t.Context(), res.GetArtifacts()[0].GetObject())
	if err != nil {
		t.Fatal(err)
	}
	said += string(art)
	for _, form := range exec.Forms([]string{dsn}) {
		if strings.Contains(said, form) {
			t.Fatalf("the result holds the secret as %q: %s", form, said)
		}
	}
	if strings.Count(said, exec.Mask) != 4 {
		t.Fatalf("want the secret masked in all 4 places: %s", said)
	}
}
