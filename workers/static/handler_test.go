package static_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/prototext"

	"github.com/sluice-ci/sluice/internal/version"
	sluicev1 "github.com/sluice-ci/sluice/proto/sluice/v1"
	"github.com/sluice-ci/sluice/workers"
	"github.com/sluice-ci/sluice/workers/static"
	"github.com/sluice-ci/sluice/workers/workertest"
)

const kind = sluicev1.StageKind_STAGE_KIND_STATIC

// A secret-shaped value assembled at run time, so no file of the repository holds one.
var stripeKey = "sk_" + "live_" + "4eC39HqLyjWDarjtT1zdp7dc9Xq2"

// fleet is a real worker serving the static kind, as `sluice worker` and `sluice dev` wire it.
type fleet struct {
	*workertest.Fleet
}

func startFleet(t *testing.T) *fleet {
	t.Helper()
	reg := workers.NewRegistry()
	static.Register(reg)
	return &fleet{workertest.Start(t, reg, kind)}
}

// upload bundles a tree of files (path -> content) as the run's source.
func (f *fleet) upload(t *testing.T, files map[string]string) string {
	t.Helper()
	data := make(map[string][]byte, len(files))
	for name, content := range files {
		data[name] = []byte(content)
	}
	return f.UploadFiles(t, data)
}

// run queues a static task the way the coordinator does and waits for its final result.
func (f *fleet) run(t *testing.T, run, digest string, spec *sluicev1.StageSpec) *sluicev1.Result {
	t.Helper()
	spec.Name, spec.Kind = "governance", kind
	return f.Run(t, &sluicev1.Task{RunId: run, Pipeline: "web", Stage: spec.Name, Kind: kind, SourceDigest: digest, Spec: spec})
}

var repo = map[string]string{
	"src/app/checkout/pay.ts":             "import Stripe from 'stripe'\n\nconst stripe = new Stripe(\"" + stripeKey + "\")\n",
	"supabase/migrations/001_cleanup.sql": "-- users are untouched\nDROP TABLE temp_import;\nDROP TABLE IF EXISTS public.users;\n",
	"docs/setup.md":                       "Set STRIPE_SECRET_KEY to your test key (sk_test_...).\n",
	"src/lib/retry.ts":                    "// TODO(ai): handle the error case\nexport const retry = 3\n",
	"governance.yaml":                     "protected_tables: [users, payments]\n",
}

// A stage with governance: fails with the findings in its result, the SARIF and JUnit
// reports downloadable as artifacts, and the secret nowhere in full.
func TestGovernanceStageFails(t *testing.T) {
	f := startFleet(t)
	digest := f.upload(t, repo)
	res := f.run(t, "gov1", digest, &sluicev1.StageSpec{Governance: &sluicev1.GovernanceSpec{
		Packs: []string{"secrets", "migrations", "ai-markers", "supabase"}, Rules: "governance.yaml", FailOn: "high",
	}})

	if res.GetOutcome() != sluicev1.Outcome_OUTCOME_FAILED {
		t.Fatalf("outcome %s (%s), want FAILED", res.GetOutcome(), res.GetMessage())
	}
	if want := "governance: 2 findings at or above high (GOV-001, GOV-003)"; res.GetMessage() != want {
		t.Errorf("message %q, want %q", res.GetMessage(), want)
	}
	got := map[string]*sluicev1.Finding{}
	for _, fd := range res.GetFindings() {
		got[fd.GetRule()+" "+fd.GetFile()] = fd
	}
	for key, want := range map[string]struct {
		line, col int32
		sev       sluicev1.Severity
		detector  string
	}{
		"GOV-001 src/app/checkout/pay.ts":             {3, 28, sluicev1.Severity_SEVERITY_CRITICAL, "stripe-secret-key"},
		"GOV-003 supabase/migrations/001_cleanup.sql": {3, 22, sluicev1.Severity_SEVERITY_HIGH, "drop-table"},
		"AI-002 src/lib/retry.ts":                     {1, 4, sluicev1.Severity_SEVERITY_MEDIUM, "ai-todo-marker"},
	} {
		fd := got[key]
		if fd == nil {
			t.Errorf("no finding %s in %v", key, res.GetFindings())
			continue
		}
		if fd.GetLine() != want.line || fd.GetColumn() != want.col || fd.GetSeverity() != want.sev ||
			fd.GetProperties()["detector"] != want.detector || len(fd.GetFingerprint()) != 32 {
			t.Errorf("%s: %v", key, fd)
		}
	}
	if len(res.GetFindings()) != 3 {
		t.Errorf("%d findings, want 3: %v", len(res.GetFindings()), res.GetFindings())
	}

	arts := map[string]*sluicev1.ArtifactRef{}
	for _, a := range res.GetArtifacts() {
		arts[a.GetName()] = a
	}
	sarifRef := arts[static.SARIFArtifact]
	if sarifRef == nil || sarifRef.GetObject() != "gov1/governance/1.0.1/governance.sarif" || sarifRef.GetContentType() != "application/sarif+json" {
		t.Fatalf("SARIF artifact %v", sarifRef)
	}
	var log struct {
		Version string `json:"version"`
		Runs    []struct {
			Tool struct {
				Driver struct {
					Version string `json:"version"`
				} `json:"driver"`
			} `json:"tool"`
			Results []struct {
				RuleID string `json:"ruleId"`
			} `json:"results"`
		} `json:"runs"`
	}
	sarif := f.Object(t, sarifRef)
	if err := json.Unmarshal(sarif, &log); err != nil || log.Version != "2.1.0" || len(log.Runs) != 1 || len(log.Runs[0].Results) != 3 {
		t.Errorf("SARIF artifact: %v %+v", err, log)
	} else if v := log.Runs[0].Tool.Driver.Version; v != version.String() {
		t.Errorf("SARIF tool.driver.version %q, want this Sluice's %q", v, version.String())
	}
	junit := f.Object(t, arts[static.JUnitArtifact])
	if !bytes.Contains(junit, []byte(`<testsuite name="GOV-003" tests="1" failures="1"`)) {
		t.Errorf("JUnit artifact:\n%s", junit)
	}

	logs := f.Logs(t, "gov1", "governance")
	if !strings.Contains(logs, "src/app/checkout/pay.ts:3:28") || !strings.Contains(logs, "sk_live_*****") {
		t.Errorf("the stage log lacks the findings table:\n%s", logs)
	}
	for what, text := range map[string]string{
		"result": prototext.Format(res), "log": logs, "SARIF": string(sarif), "JUnit": string(junit),
	} {
		if strings.Contains(text, stripeKey[8:]) {
			t.Errorf("the %s shows the secret", what)
		}
	}
}

// The same tree passes with a higher threshold; the findings below it are still reported.
func TestGovernanceStageThreshold(t *testing.T) {
	f := startFleet(t)
	digest := f.upload(t, map[string]string{"src/lib/retry.ts": repo["src/lib/retry.ts"]})
	res := f.run(t, "gov2", digest, &sluicev1.StageSpec{Governance: &sluicev1.GovernanceSpec{FailOn: "error"}})
	if res.GetOutcome() != sluicev1.Outcome_OUTCOME_PASSED || len(res.GetFindings()) != 1 || len(res.GetArtifacts()) != 2 {
		t.Errorf("got %s %q with %d findings and %d artifacts, want PASSED with 1 finding below and 2 artifacts",
			res.GetOutcome(), res.GetMessage(), len(res.GetFindings()), len(res.GetArtifacts()))
	}
}

// run: linters and governance in one stage: a failing linter fails the stage and the
// governance findings are reported too.
func TestLinterAndGovernance(t *testing.T) {
	f := startFleet(t)
	digest := f.upload(t, map[string]string{"lint.sh": "echo 'main.go:3: unused variable x' >&2\nexit 3\n", "README.md": "hello\n"})
	res := f.run(t, "gov3", digest, &sluicev1.StageSpec{
		Run:        []string{"sh lint.sh"},
		Governance: &sluicev1.GovernanceSpec{},
	})
	if res.GetOutcome() != sluicev1.Outcome_OUTCOME_FAILED || !strings.Contains(res.GetMessage(), "exited 3") ||
		!strings.Contains(res.GetMessage(), "governance: no findings") {
		t.Errorf("got %s %q", res.GetOutcome(), res.GetMessage())
	}
}

// Bad input is an ERROR that names the problem: a rules file with an invalid regex (file,
// line, rule), a path out of the tree, a run without a source.
func TestGovernanceStageErrors(t *testing.T) {
	f := startFleet(t)
	digest := f.upload(t, map[string]string{"ci/rules.yaml": "rules:\n  - id: ORG-1\n    regex: '(open'\n"})
	for _, tc := range []struct {
		name, digest string
		g            *sluicev1.GovernanceSpec
		want         string
	}{
		{"invalid regex", digest, &sluicev1.GovernanceSpec{Rules: "ci/rules.yaml"}, "governance: ci/rules.yaml:3:12: rules.ORG-1.regex: invalid regex"},
		{"outside the tree", digest, &sluicev1.GovernanceSpec{Rules: "../etc/rules.yaml"}, "path outside the source tree"},
		{"unknown pack", digest, &sluicev1.GovernanceSpec{Packs: []string{"typos"}}, `unknown rule pack "typos"`},
		{"bad threshold", digest, &sluicev1.GovernanceSpec{FailOn: "urgent"}, `fail_on: unknown severity "urgent"`},
		{"no source", "", &sluicev1.GovernanceSpec{}, "no source tree"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := f.run(t, "err-"+strings.ReplaceAll(tc.name, " ", "-"), tc.digest, &sluicev1.StageSpec{Governance: tc.g})
			if res.GetOutcome() != sluicev1.Outcome_OUTCOME_ERROR || !strings.Contains(res.GetMessage(), tc.want) {
				t.Errorf("got %s %q, want ERROR containing %q", res.GetOutcome(), res.GetMessage(), tc.want)
			}
		})
	}
}
