package main

import (
	"bytes"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-ci/sluice/internal/golden"
	sluicev1 "github.com/sluice-ci/sluice/proto/sluice/v1"
)

// assertionLines are the lines of testdata/gotest's failed TestAssert that say what went
// wrong, as run and runs show print them.
var assertionLines = []string{"suite_test.go:40:", "Error Trace:\tsuite_test.go:40", "expected: 847", "actual  : 845"}

// sluice run prints a failed sharded test stage's failed test with its own assertion
// message, then the failed shard's output as go test printed it, under a header naming
// the shard; runs show prints the failed test and its message too.
func TestRunPrintsTheFailedTestsMessage(t *testing.T) {
	url := startTestFleet(t, "test")
	code, stdout, stderr := cli(t, "--nats", url, "run", "testdata/shards.yaml", "--source", "testdata/gotest", "--ref", "main")
	if code != exitFailed {
		t.Fatalf("exit %d, want %d\n%s\n%s", code, exitFailed, stdout, stderr)
	}
	for _, want := range append([]string{"example.com/inner/suite: TestAssert failed (shard 2/2)", "--- shard 2/2", "| --- FAIL: TestAssert"}, assertionLines...) {
		if !strings.Contains(stdout, want) {
			t.Errorf("sluice run does not print %q:\n%s", want, stdout)
		}
	}
	for _, unwanted := range []string{"--- shard 1/2", `"Action"`, "TestFailsOnPurpose failed"} {
		if strings.Contains(stdout, unwanted) {
			t.Errorf("sluice run prints %q:\n%s", unwanted, stdout)
		}
	}
	id := runID(t, stdout)
	code, stdout, stderr = cli(t, "--nats", url, "runs", "show", id)
	if code != exitOK {
		t.Fatalf("runs show: exit %d\n%s", code, stderr)
	}
	for _, want := range append([]string{"test failed (attempt 1):", "example.com/inner/suite: TestAssert failed (shard 2/2)"}, assertionLines...) {
		if !strings.Contains(stdout, want) {
			t.Errorf("runs show does not print %q:\n%s", want, stdout)
		}
	}
	// sluice logs numbers the shards from 1 too.
	code, stdout, stderr = cli(t, "--nats", url, "logs", id, "test")
	if code != exitOK || !strings.Contains(stdout, "--- attempt 1, shard 2\n") || strings.Contains(stdout, ", shard 0") {
		t.Errorf("sluice logs: exit %d, want a header for shard 2 and none for a shard 0:\n%s\n%s", code, stdout, stderr)
	}
}

// runs show lists the failed stage's findings of its last attempt only, each with its
// excerpt, and says how many more there are.
func TestRunShowFailedFindingsGolden(t *testing.T) {
	run := sampleRun()
	test := run.GetStages()[1]
	test.Shards = []*sluicev1.ShardState{{Index: 0}, {Index: 1, Outcome: sluicev1.Outcome_OUTCOME_FAILED}}
	finding := func(attempt, test, excerpt string) *sluicev1.Finding {
		return &sluicev1.Finding{Rule: "test-failed", File: "example.com/p", Message: test + " failed", Excerpt: excerpt,
			Properties: map[string]string{"test": test, "shard": "2/2", "attempt": attempt}}
	}
	test.Findings = []*sluicev1.Finding{finding("1", "TestFlaky", "p_test.go:9: flaked")}
	for i := range maxShownFindings + 2 {
		test.Findings = append(test.Findings, finding("2", fmt.Sprintf("TestCase%02d", i+1), "p_test.go:12: \n    \tError:  \tNot equal"))
	}
	test.FindingsOmitted = 3
	var b bytes.Buffer
	if err := writeRun(&app{stdout: &b}, run); err != nil {
		t.Fatal(err)
	}
	golden.Check(t, filepath.Join("testdata", "golden", "runs-show-failed.txt"), b.Bytes())
}
