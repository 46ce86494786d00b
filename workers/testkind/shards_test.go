package testkind_test

import (
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/sluice-ci/sluice/internal/junit"
	"github.com/sluice-ci/sluice/internal/source"
	"github.com/sluice-ci/sluice/internal/testdir"
	sluicev1 "github.com/sluice-ci/sluice/proto/sluice/v1"
	"github.com/sluice-ci/sluice/workers/testkind"
)

// assertion is what testdata/inner's TestAssert says when it fails, without go test's
// framing and indent.
const assertion = "suite_test.go:40: \n" +
	"    \tError Trace:\tsuite_test.go:40\n" +
	"    \tError:      \tNot equal: \n" +
	"    \t            \texpected: 847\n" +
	"    \t            \tactual  : 845\n" +
	"    \tTest:       \tTestAssert"

// runInner runs testdata/inner (packages notests, slow and suite; by name, shard 1/2 gets
// notests and suite, shard 2/2 slow) as a 2-shard test stage and waits for the run to end.
func (r *rig) runInner(t *testing.T, extraEnv map[string]string) *sluicev1.RunState {
	t.Helper()
	store, err := r.env.JS.ObjectStore(t.Context(), r.env.Config.Names.SourcesStore())
	if err != nil {
		t.Fatal(err)
	}
	digest, err := source.Upload(t.Context(), store, filepath.Join("testdata", "inner"), source.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		testkind.UnitsEnv: "go list ./...",
		"GOCACHE":         gocache, "GOTOOLCHAIN": "local", "GOFLAGS": "-mod=mod",
	}
	for k, v := range extraEnv {
		env[k] = v
	}
	spec := &sluicev1.PipelineSpec{Version: 1, Name: "inner", Stages: []*sluicev1.StageSpec{{
		Name: "test", Kind: testkind.Kind, Shards: 2, Env: env, Timeout: durationpb.New(2 * time.Minute),
		Run: []string{"go test -count=1 -json $" + testkind.ShardUnitsEnv},
	}}}
	st, err := r.client.Submit(t.Context(), &sluicev1.SubmitRunRequest{Spec: spec, SourceDigest: digest})
	if err != nil {
		t.Fatal(err)
	}
	return r.wait(t, st.GetId())
}

// junitReports reads the stage's JUnit artifacts, by name.
func (r *rig) junitReports(t *testing.T, stage *sluicev1.StageState) map[string]*junit.Report {
	t.Helper()
	store, err := r.env.JS.ObjectStore(t.Context(), r.env.Config.Names.ArtifactsStore())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*junit.Report{}
	for _, a := range stage.GetArtifacts() {
		data, err := store.GetBytes(t.Context(), a.GetObject())
		if err != nil {
			t.Fatalf("artifact %s: %v", a.GetName(), err)
		}
		rep, err := junit.Read(strings.NewReader(string(data)))
		if err != nil {
			t.Fatalf("artifact %s: %v", a.GetName(), err)
		}
		out[a.GetName()] = rep
	}
	return out
}

// A suite whose own tests run failing tests on purpose (testify's pattern) passes with no
// failure reported; a package without test files is recorded as costing nothing; shards
// are numbered from 1 wherever they are named; the stage message totals both shards.
func TestShardedSuiteWithInnerFailuresPasses(t *testing.T) {
	r := start(t)
	st := r.runInner(t, nil)
	stage := st.GetStages()[0]
	if st.GetStatus() != sluicev1.RunStatus_RUN_STATUS_PASSED {
		t.Fatalf("run %s: %s", st.GetStatus(), stage.GetMessage())
	}
	if len(stage.GetFindings()) != 0 {
		t.Errorf("findings %v, want none: the inner failures were expected by the test that ran them", stage.GetFindings())
	}
	// suite: TestSuiteReportsFailures, its InnerSuite and that suite's two tests, TestAssert;
	// slow: TestFirst, TestSlow.
	if want := "7 passed across 2 shards"; stage.GetMessage() != want {
		t.Errorf("stage message %q, want %q", stage.GetMessage(), want)
	}
	reps := r.junitReports(t, stage)
	if _, ok := reps["junit-shard-1.xml"]; !ok || len(reps) != 2 || reps["junit-shard-2.xml"] == nil {
		t.Fatalf("artifacts %v, want junit-shard-1.xml and junit-shard-2.xml", slices.Sorted(maps.Keys(reps)))
	}
	rep := reps["junit-shard-1.xml"]
	if rep.Failures != 0 || rep.Errors != 0 {
		t.Errorf("shard 1's JUnit has %d failures and %d errors, want none", rep.Failures, rep.Errors)
	}
	i := slices.IndexFunc(rep.Cases, func(c junit.ReadCase) bool {
		return c.Name == "TestSuiteReportsFailures/InnerSuite/TestFailsOnPurpose"
	})
	if i < 0 || rep.Cases[i].Status != junit.Passed {
		t.Errorf("the inner test that fails on purpose: %+v, want a passed case", rep.Cases)
	}
	for _, sh := range stage.GetShards() {
		if strings.Contains(sh.GetMessage(), "shard 0") {
			t.Errorf("shard %d's message %q counts shards from 0", sh.GetIndex(), sh.GetMessage())
		}
	}
	for _, m := range stage.GetMetrics() {
		if v, ok := m.GetLabels()["shard"]; ok && v != "1/2" && v != "2/2" {
			t.Errorf("metric %s has shard label %q, want 1/2 or 2/2", m.GetName(), v)
		}
	}
	e, err := r.timings.Get(t.Context(), testkind.TimingKey("inner", "test", "example.com/inner/notests"))
	if err != nil || string(e.Value()) != "0" {
		t.Errorf("the package without test files has timing %v (%v), want 0 ms", e, err)
	}
}

// A failing shard stops the other; the stopped shard still records its outcome and its
// JUnit (the tests it finished), the failed test's finding carries its assertion message,
// and the stage message totals both shards.
func TestStoppedShardRecordsItsReport(t *testing.T) {
	r := start(t)
	st := r.runInner(t, map[string]string{"FAIL_ASSERT": "1", "SYNC_DIR": testdir.Shared(t)})
	stage := st.GetStages()[0]
	if st.GetStatus() != sluicev1.RunStatus_RUN_STATUS_FAILED {
		t.Fatalf("run %s: %s", st.GetStatus(), stage.GetMessage())
	}
	// The stopped shard reports a moment after the stage fails.
	deadline := time.Now().Add(30 * time.Second)
	for stage.GetShards()[1].GetPhase() != sluicev1.ResultPhase_RESULT_PHASE_FINAL && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		st = r.wait(t, st.GetId())
		stage = st.GetStages()[0]
	}
	if sh := stage.GetShards()[1]; sh.GetOutcome() != sluicev1.Outcome_OUTCOME_CANCELLED {
		t.Fatalf("shard 2/2: %v %v %q, want its CANCELLED result recorded", sh.GetPhase(), sh.GetOutcome(), sh.GetMessage())
	}
	reps := r.junitReports(t, stage)
	slow := reps["junit-shard-2.xml"]
	if slow == nil {
		t.Fatalf("no JUnit of the stopped shard among %d artifacts", len(reps))
	}
	statuses := map[string]junit.Status{}
	for _, c := range slow.Cases {
		statuses[c.Name] = c.Status
	}
	if statuses["TestFirst"] != junit.Passed || statuses["TestSlow"] != junit.Skipped {
		t.Errorf("the stopped shard's JUnit: %v, want TestFirst passed and TestSlow cut off (skipped)", statuses)
	}
	// shard 1/2: notests; suite's 4 passing cases and TestAssert. shard 2/2: TestFirst,
	// and TestSlow cut off.
	const totals = "5 passed, 1 failed, 1 skipped across 2 shards (1 cancelled); shard 1/2: "
	if !strings.HasPrefix(stage.GetMessage(), totals) {
		t.Errorf("stage message %q, want it to start %q", stage.GetMessage(), totals)
	}
	if len(stage.GetFindings()) != 1 {
		t.Fatalf("findings %v, want TestAssert's only", stage.GetFindings())
	}
	f := stage.GetFindings()[0]
	if f.GetMessage() != "TestAssert failed" || f.GetExcerpt() != assertion {
		t.Errorf("finding %q with excerpt\n%s\nwant TestAssert's assertion:\n%s", f.GetMessage(), f.GetExcerpt(), assertion)
	}
	if f.GetProperties()["shard"] != "1/2" || f.GetProperties()["attempt"] != "1" {
		t.Errorf("finding properties %v, want shard 1/2 of attempt 1", f.GetProperties())
	}
}
