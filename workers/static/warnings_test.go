package static_test

import (
	"bytes"
	"fmt"
	"sort"
	"strings"
	"testing"

	sluicev1 "github.com/sluice-ci/sluice/proto/sluice/v1"
	"github.com/sluice-ci/sluice/workers/static"
)

// A linter that warns as go vet does (its lines, from the real go vet in package lintwarn's
// tests): warnings on stderr, exit 1.
const vetScript = `echo '# example.com/app' >&2
echo 'main.go:17:14: fmt.Printf format %d has arg name of wrong type string' >&2
echo './sub/sub.go:5:43: fmt.Sprintf format %s reads arg #1, but call has 0 args' >&2
exit 1
`

// A second linter that warns on stdout and exits 0.
const staticcheckScript = `echo 'main.go:21:2: self-assignment of x to x (SA4018)'
echo 'main.go:21:2: self-assignment of x to x (SA4018)'
`

// findings renders a result's findings one a line, sorted.
func findings(res *sluicev1.Result) string {
	var lines []string
	for _, f := range res.GetFindings() {
		lines = append(lines, fmt.Sprintf("%s:%d:%d [%s] %s (%s)", f.GetFile(), f.GetLine(), f.GetColumn(), f.GetRule(), f.GetMessage(), f.GetProperties()["tool"]))
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// A static stage counts its linters' warnings: above max_warnings it fails with each warning
// a finding, in the message and in SARIF and JUnit artifacts; at or under it passes. A step
// that exits 1 because it warned is judged by the count and the next step still runs; a
// step that fails without a warning, or whose linter could not compile the code, fails the
// stage whatever the count.
func TestWarningsStage(t *testing.T) {
	f := startFleet(t)
	digest := f.upload(t, map[string]string{
		"vet.sh":         vetScript,
		"staticcheck.sh": staticcheckScript,
		"crash.sh":       "echo 'panic: runtime error: index out of range' >&2\nexit 2\n",
		"broken.sh":      "echo 'vet: ./main.go:4:2: undefined: undefinedThing' >&2\necho 'main.go:17:14: fmt.Printf format %d has arg name of wrong type string' >&2\nexit 1\n",
	})
	const three = "main.go:17:14 [] fmt.Printf format %d has arg name of wrong type string (go vet)\n" +
		"main.go:21:2 [SA4018] self-assignment of x to x (staticcheck)\n" +
		"sub/sub.go:5:43 [] fmt.Sprintf format %s reads arg #1, but call has 0 args (go vet)"
	for _, tc := range []struct {
		name     string
		run      []string
		max      int32
		outcome  sluicev1.Outcome
		message  string
		findings string
	}{
		{"over the limit", []string{"sh vet.sh", "sh staticcheck.sh"}, 0, sluicev1.Outcome_OUTCOME_FAILED,
			"2 steps ran (step 1 exited 1 with warnings); warnings: 3 warnings over max_warnings 0", three},
		{"at the limit", []string{"sh vet.sh", "sh staticcheck.sh"}, 3, sluicev1.Outcome_OUTCOME_PASSED,
			"2 steps ran (step 1 exited 1 with warnings); warnings: 3 warnings, within max_warnings 3", three},
		{"no warnings", []string{"true"}, 0, sluicev1.Outcome_OUTCOME_PASSED,
			"1 step passed; warnings: 0 warnings, within max_warnings 0", ""},
		{"exit without warnings", []string{"sh crash.sh", "sh staticcheck.sh"}, 5, sluicev1.Outcome_OUTCOME_FAILED,
			"step 1 `sh crash.sh` exited 2; warnings: 0 warnings, within max_warnings 5", ""},
		{"compile error", []string{"sh broken.sh"}, 5, sluicev1.Outcome_OUTCOME_FAILED,
			"step 1 `sh broken.sh` exited 1; warnings: 1 warning, within max_warnings 5",
			"main.go:17:14 [] fmt.Printf format %d has arg name of wrong type string (go vet)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			run := "warn-" + strings.ReplaceAll(tc.name, " ", "-")
			res := f.run(t, run, digest, &sluicev1.StageSpec{Run: tc.run, Warnings: &sluicev1.WarningsSpec{
				Formats: []string{"go-vet", "staticcheck"}, MaxWarnings: tc.max,
			}})
			if res.GetOutcome() != tc.outcome || res.GetMessage() != tc.message {
				t.Errorf("got %s %q, want %s %q", res.GetOutcome(), res.GetMessage(), tc.outcome, tc.message)
			}
			if got := findings(res); got != tc.findings {
				t.Errorf("findings:\n%s\nwant:\n%s", got, tc.findings)
			}
			sarif := f.Artifact(t, res, static.WarningsSARIFArtifact)
			junit := f.Artifact(t, res, static.WarningsJUnitArtifact)
			failures := fmt.Sprintf(`failures="%d"`, strings.Count(tc.findings+"\n", "\n"))
			if !strings.Contains(tc.message, "over max_warnings") {
				failures = `failures="0"`
			}
			if !bytes.Contains(junit, []byte(`<testsuites name="sluice warnings" tests=`)) || !bytes.Contains(junit, []byte(failures)) {
				t.Errorf("JUnit artifact, want %s:\n%s", failures, junit)
			}
			if tc.findings != "" && !bytes.Contains(sarif, []byte(`"uri": "sub/sub.go"`)) && !bytes.Contains(sarif, []byte(`"uri": "main.go"`)) {
				t.Errorf("SARIF artifact lacks the warnings:\n%s", sarif)
			}
		})
	}
}

// Warnings and governance in one stage: the result carries both kinds of findings and both
// pairs of reports, and the message says both verdicts.
func TestWarningsAndGovernance(t *testing.T) {
	f := startFleet(t)
	digest := f.upload(t, map[string]string{"vet.sh": vetScript, "src/lib/retry.ts": repo["src/lib/retry.ts"]})
	res := f.run(t, "warn-gov", digest, &sluicev1.StageSpec{
		Run:        []string{"sh vet.sh"},
		Warnings:   &sluicev1.WarningsSpec{Formats: []string{"go-vet"}, MaxWarnings: 1},
		Governance: &sluicev1.GovernanceSpec{FailOn: "critical"},
	})
	want := "1 step ran (step 1 exited 1 with warnings); warnings: 2 warnings over max_warnings 1; governance: no findings at or above critical in 2 files (1 below)"
	if res.GetOutcome() != sluicev1.Outcome_OUTCOME_FAILED || res.GetMessage() != want {
		t.Errorf("got %s %q, want FAILED %q", res.GetOutcome(), res.GetMessage(), want)
	}
	rules := map[string]int{}
	for _, fd := range res.GetFindings() {
		rules[fd.GetRule()+"/"+fd.GetProperties()["tool"]]++
	}
	if fmt.Sprint(rules) != "map[/go vet:2 AI-002/:1]" {
		t.Errorf("findings by rule/tool %v", rules)
	}
	var names []string
	for _, a := range res.GetArtifacts() {
		names = append(names, a.GetName())
	}
	sort.Strings(names)
	if got := strings.Join(names, " "); got != "governance.junit.xml governance.sarif warnings.junit.xml warnings.sarif" {
		t.Errorf("artifacts %s", got)
	}
}
