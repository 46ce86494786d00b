// Package static is the static stage kind: a thin adapter from a task to the governance
// engine (package github.com/sluice-ci/sluice/governance) and the warnings counter (package
// github.com/sluice-ci/sluice/lintwarn) and back to a Result. It runs a stage's `run:` steps
// (linters), counts the warnings they print when the stage has a `warnings:` block, and
// runs its `governance:` block, which scans the run's source tree. Both report findings in
// the result and upload SARIF and JUnit reports as artifacts.
package static

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/sluice-ci/sluice/governance"
	"github.com/sluice-ci/sluice/internal/version"
	sluicev1 "github.com/sluice-ci/sluice/proto/sluice/v1"
	"github.com/sluice-ci/sluice/workers"
)

// Artifact names of a governance stage, under <run>/<stage>/ in the artifacts store.
const (
	SARIFArtifact = "governance.sarif"
	JUnitArtifact = "governance.junit.xml"
)

// MaxResultFindings bounds the findings a result carries, so that a repository with
// thousands of them still fits a NATS message; the SARIF artifact has them all.
const MaxResultFindings = 200

// Register installs the static kind's Handler, its SARIF logs naming this Sluice's version.
func Register(r *workers.Registry) {
	r.Register(sluicev1.StageKind_STAGE_KIND_STATIC, Handler{Version: version.String()})
}

// Handler runs static stages. The zero value is ready to use.
type Handler struct {
	// Version goes into the SARIF log's tool version; optional.
	Version string
}

// Handle runs the stage's `run:` steps, counting their warnings, then its governance block.
// The stage fails when a step fails, the warnings are above max_warnings or a finding is at
// or above fail_on; all are reported in one result.
func (h Handler) Handle(ctx context.Context, t *workers.Task) *sluicev1.Result {
	spec := t.Task.GetSpec()
	g := spec.GetGovernance()
	if g == nil || len(spec.GetRun()) > 0 {
		steps := steps(ctx, t, spec)
		if g == nil {
			return steps
		}
		switch steps.GetOutcome() {
		case sluicev1.Outcome_OUTCOME_PASSED, sluicev1.Outcome_OUTCOME_FAILED:
			// A failed linter does not hide the governance findings: run both.
			return merge(steps, h.governance(ctx, t, g))
		}
		return steps
	}
	return h.governance(ctx, t, g)
}

// merge combines the steps' result with the governance result: the governance findings
// (most severe first) before the warnings, at most MaxResultFindings in all.
func merge(steps, gov *sluicev1.Result) *sluicev1.Result {
	gov.Metrics = append(steps.GetMetrics(), gov.GetMetrics()...)
	gov.Artifacts = append(gov.GetArtifacts(), steps.GetArtifacts()...)
	gov.Findings = append(gov.GetFindings(), steps.GetFindings()...)
	if gov.Detail == nil {
		gov.Detail = map[string]string{}
	}
	for k, v := range steps.GetDetail() {
		gov.Detail[k] = v
	}
	if n := len(gov.Findings); n > MaxResultFindings {
		gov.Detail["findings_truncated"] = fmt.Sprintf("%d more findings are in the SARIF artifacts", n-MaxResultFindings)
		gov.Findings = gov.Findings[:MaxResultFindings]
	}
	gov.ExitCode = steps.GetExitCode()
	if steps.GetOutcome() != sluicev1.Outcome_OUTCOME_PASSED && gov.GetOutcome() == sluicev1.Outcome_OUTCOME_PASSED {
		gov.Outcome = steps.GetOutcome()
	}
	gov.Message = steps.GetMessage() + "; " + gov.GetMessage()
	return gov
}

// errorf is an ERROR result: the stage could not be checked.
func errorf(format string, args ...any) *sluicev1.Result {
	return &sluicev1.Result{Outcome: sluicev1.Outcome_OUTCOME_ERROR, Message: "governance: " + fmt.Sprintf(format, args...)}
}

func (h Handler) governance(ctx context.Context, t *workers.Task, g *sluicev1.GovernanceSpec) *sluicev1.Result {
	if t.Task.GetSourceDigest() == "" || t.Dir == "" {
		return errorf("the run has no source tree to scan: submit it with --source")
	}
	threshold := governance.DefaultFailOn
	if g.GetFailOn() != "" {
		var err error
		if threshold, err = governance.ParseSeverity(g.GetFailOn()); err != nil {
			return errorf("fail_on: %v", err)
		}
	}
	c := governance.Config{Packs: g.GetPacks()}
	if g.GetRules() != "" {
		data, err := readInTree(t.Dir, g.GetRules())
		if err != nil {
			return errorf("rules: %v", err)
		}
		if c.Rules, err = governance.ParseRules(g.GetRules(), data); err != nil {
			return errorf("%v", err)
		}
	}
	if g.GetBaseline() != "" {
		data, err := readInTree(t.Dir, g.GetBaseline())
		if err != nil {
			return errorf("baseline: %v", err)
		}
		if c.Baseline, err = governance.ReadBaseline(g.GetBaseline(), bytes.NewReader(data)); err != nil {
			return errorf("%v", err)
		}
	}
	engine, err := governance.New(c)
	if err != nil {
		return errorf("%v", err)
	}
	fmt.Fprintf(t.Log, "governance: scanning with %d rules, failing at %s or above\n", len(engine.Rules()), threshold)
	rep, err := engine.Scan(ctx, t.Dir)
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return &sluicev1.Result{Outcome: sluicev1.Outcome_OUTCOME_TIMED_OUT, Message: "governance: scan timed out"}
	case errors.Is(err, context.Canceled):
		return &sluicev1.Result{Outcome: sluicev1.Outcome_OUTCOME_CANCELLED, Message: "governance: scan cancelled"}
	case err != nil:
		return errorf("%v", err)
	}
	if err := governance.WriteText(t.Stdout, rep, threshold); err != nil {
		t.Logger.Warn("write governance findings to the log", "err", err)
	}

	res := result(rep, threshold)
	var sarif, junit bytes.Buffer
	if err := governance.WriteSARIF(&sarif, rep, governance.SARIFOptions{ToolVersion: h.Version}); err != nil {
		return errorf("%v", err)
	}
	if err := governance.WriteJUnit(&junit, rep, threshold); err != nil {
		return errorf("%v", err)
	}
	upload(ctx, t, res, "governance", []report{
		{SARIFArtifact, "application/sarif+json", &sarif},
		{JUnitArtifact, "application/xml", &junit},
	})
	return res
}

// result maps a report to the stage's result: the failing findings decide the outcome, the
// active ones (most severe first, at most MaxResultFindings) travel in it.
func result(rep *governance.Report, threshold governance.Severity) *sluicev1.Result {
	active := rep.Active()
	failing := rep.Failing(threshold)
	res := &sluicev1.Result{Outcome: sluicev1.Outcome_OUTCOME_PASSED, Detail: map[string]string{
		"governance_summary": governance.Summary(rep, threshold),
	}}
	if len(failing) > 0 {
		res.Outcome = sluicev1.Outcome_OUTCOME_FAILED
		res.Message = fmt.Sprintf("governance: %d %s at or above %s (%s)",
			len(failing), plural(len(failing), "finding"), threshold, byRule(failing))
	} else {
		res.Message = fmt.Sprintf("governance: no findings at or above %s in %d files", threshold, rep.Stats.Files)
		if len(active) > 0 {
			res.Message += fmt.Sprintf(" (%d below)", len(active))
		}
	}
	sort.SliceStable(active, func(i, j int) bool { return active[i].Severity > active[j].Severity })
	if len(active) > MaxResultFindings {
		res.Detail["findings_truncated"] = fmt.Sprintf("%d more findings are in %s", len(active)-MaxResultFindings, SARIFArtifact)
		active = active[:MaxResultFindings]
	}
	for _, f := range active {
		res.Findings = append(res.Findings, &sluicev1.Finding{
			Rule: f.Rule, File: f.File, Line: int32(f.Line), Column: int32(f.Column),
			Message: f.Message, Severity: sluicev1.Severity(f.Severity), Excerpt: f.Excerpt,
			Fingerprint: f.Fingerprint,
			Properties: map[string]string{
				"detector":   f.Detector,
				"end_line":   strconv.Itoa(f.EndLine),
				"end_column": strconv.Itoa(f.EndColumn),
			},
		})
	}
	inline, base := rep.Suppressed()
	for _, m := range []struct {
		name  string
		value float64
		unit  string
	}{
		{"governance_files_scanned", float64(rep.Stats.Files), ""},
		{"governance_bytes_scanned", float64(rep.Stats.Bytes), "By"},
		{"governance_scan_seconds", rep.Stats.Duration.Seconds(), "s"},
		{"governance_findings", float64(len(rep.Active())), ""},
		{"governance_failing_findings", float64(len(failing)), ""},
		{"governance_suppressed_inline", float64(inline), ""},
		{"governance_suppressed_baseline", float64(base), ""},
	} {
		res.Metrics = append(res.Metrics, &sluicev1.Metric{Name: m.name, Value: m.value, Unit: m.unit})
	}
	return res
}

// byRule counts findings per rule: "GOV-001 ×2, GOV-003".
func byRule(fs []governance.Finding) string {
	counts := map[string]int{}
	var order []string
	for _, f := range fs {
		if counts[f.Rule] == 0 {
			order = append(order, f.Rule)
		}
		counts[f.Rule]++
	}
	sort.Strings(order)
	parts := make([]string, len(order))
	for i, r := range order {
		parts[i] = r
		if counts[r] > 1 {
			parts[i] += " ×" + strconv.Itoa(counts[r])
		}
	}
	return strings.Join(parts, ", ")
}

func plural(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}

// readInTree reads rel (slash-separated, relative to the tree) from the task's tree.
func readInTree(dir, rel string) ([]byte, error) {
	clean := path.Clean(rel)
	if path.IsAbs(clean) || clean == ".." || strings.HasPrefix(clean, "../") {
		return nil, fmt.Errorf("%w: %q", ErrOutsideTree, rel)
	}
	data, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(clean)))
	if err != nil {
		return nil, fmt.Errorf("read %s from the source tree: %w", rel, err)
	}
	return data, nil
}

// report is an artifact a stage's checks wrote.
type report struct {
	name, contentType string
	r                 io.Reader
}

// upload stores the reports as the stage's artifacts; a failed upload makes the stage an
// ERROR, since a report it promised would be missing.
func upload(ctx context.Context, t *workers.Task, res *sluicev1.Result, check string, reports []report) {
	for _, a := range reports {
		ref, err := t.UploadArtifact(ctx, a.name, a.contentType, a.r)
		if err != nil {
			res.Outcome = sluicev1.Outcome_OUTCOME_ERROR
			res.Message += "; " + err.Error()
			continue
		}
		res.Artifacts = append(res.Artifacts, ref)
		fmt.Fprintf(t.Log, "%s: uploaded %s (%d bytes)\n", check, ref.GetObject(), ref.GetSize())
	}
}
