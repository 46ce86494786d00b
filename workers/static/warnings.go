package static

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/sluice-ci/sluice/lintwarn"
	sluicev1 "github.com/sluice-ci/sluice/proto/sluice/v1"
	"github.com/sluice-ci/sluice/workers"
	"github.com/sluice-ci/sluice/workers/exec"
)

// Artifact names of a stage with a warnings block.
const (
	WarningsSARIFArtifact = "warnings.sarif"
	WarningsJUnitArtifact = "warnings.junit.xml"
)

// steps runs the stage's run: steps. With a warnings block it reads their stdout and stderr
// for the warnings of the named formats, and the count decides with the exit codes: the
// stage fails above max_warnings, and a step that exits non-zero having printed warnings
// (go vet, staticcheck, golangci-lint and eslint all exit 1 when they warn) is judged by
// the count instead of its exit code, so the next steps run. A step that exits non-zero
// without a warning, or whose linter said it could not compile the code, still fails.
func steps(ctx context.Context, t *workers.Task, spec *sluicev1.StageSpec) *sluicev1.Result {
	w := spec.GetWarnings()
	if w == nil {
		return t.RunSteps(ctx, spec.GetRun())
	}
	parser, err := lintwarn.NewParser(w.GetFormats(), w.GetPatterns())
	if err != nil {
		return &sluicev1.Result{Outcome: sluicev1.Outcome_OUTCOME_ERROR, Message: "warnings: " + err.Error()}
	}
	c := lintwarn.NewCollector(parser, t.Dir)
	runner := *t.Exec
	runner.Stdout = &tee{w: orDiscard(t.Exec.Stdout), s: c.Stream()}
	runner.Stderr = &tee{w: orDiscard(t.Exec.Stderr), s: c.Stream()}

	res := &sluicev1.Result{Outcome: sluicev1.Outcome_OUTCOME_PASSED}
	var excused []string
	for i, command := range spec.GetRun() {
		lines, toolErrors := c.Lines(), len(c.ToolErrors())
		s, err := runner.Run(ctx, i+1, command)
		workers.AddStep(res, s)
		if err == nil {
			continue
		}
		if errors.Is(err, exec.ErrFailed) && s.ExitCode > 0 && c.Lines() > lines && len(c.ToolErrors()) == toolErrors {
			fmt.Fprintf(t.Log, "warnings: step %d exited %d having printed warnings: the count decides\n", s.Step, s.ExitCode)
			excused = append(excused, fmt.Sprintf("step %d exited %d", s.Step, s.ExitCode))
			continue
		}
		res.Outcome, res.Message = workers.StepOutcome(err), err.Error()
		break
	}
	switch {
	case res.Message != "":
	case len(excused) > 0:
		res.Message = fmt.Sprintf("%d %s ran (%s with warnings)", len(spec.GetRun()), plural(len(spec.GetRun()), "step"), strings.Join(excused, ", "))
	default:
		res.Message = workers.StepsPassed(len(spec.GetRun()))
	}
	for _, line := range c.ToolErrors() {
		fmt.Fprintf(t.Log, "warnings: the linter could not check the code: %s\n", line)
	}

	rep := c.Report(int(w.GetMaxWarnings()))
	res.Message += "; warnings: " + rep.Summary()
	if res.GetOutcome() == sluicev1.Outcome_OUTCOME_PASSED && rep.Failed() {
		res.Outcome = sluicev1.Outcome_OUTCOME_FAILED
	}
	res.Detail = map[string]string{"warnings_summary": rep.Summary()}
	res.Metrics = append(res.Metrics,
		&sluicev1.Metric{Name: "warnings", Value: float64(rep.Count)},
		&sluicev1.Metric{Name: "warnings_max", Value: float64(rep.MaxWarnings)},
	)
	fmt.Fprintf(t.Log, "warnings: %s\n", rep.Summary())
	kept := rep.Warnings
	if len(kept) > MaxResultFindings {
		res.Detail["findings_truncated"] = fmt.Sprintf("%d more warnings are in %s", rep.Count-MaxResultFindings, WarningsSARIFArtifact)
		kept = kept[:MaxResultFindings]
	}
	for _, wn := range kept {
		sev := sluicev1.Severity_SEVERITY_MEDIUM
		if wn.Severity == "error" {
			sev = sluicev1.Severity_SEVERITY_HIGH
		}
		f := &sluicev1.Finding{
			Rule: wn.Rule, File: wn.File, Line: int32(wn.Line), Column: int32(wn.Column), Message: wn.Message, Severity: sev,
			Properties: map[string]string{"format": wn.Format, "tool": rep.Tool(wn.Format)},
		}
		res.Findings = append(res.Findings, f)
	}
	switch res.GetOutcome() {
	case sluicev1.Outcome_OUTCOME_PASSED, sluicev1.Outcome_OUTCOME_FAILED:
		uploadReports(ctx, t, res, rep)
	}
	return res
}

// uploadReports uploads the warnings' SARIF and JUnit reports; a failed upload makes the
// stage an ERROR, since its report would be missing.
func uploadReports(ctx context.Context, t *workers.Task, res *sluicev1.Result, rep *lintwarn.Report) {
	var sarif, junit bytes.Buffer
	if err := lintwarn.WriteSARIF(&sarif, rep); err != nil {
		res.Outcome, res.Message = sluicev1.Outcome_OUTCOME_ERROR, res.GetMessage()+"; "+err.Error()
		return
	}
	if err := lintwarn.WriteJUnit(&junit, rep); err != nil {
		res.Outcome, res.Message = sluicev1.Outcome_OUTCOME_ERROR, res.GetMessage()+"; "+err.Error()
		return
	}
	upload(ctx, t, res, "warnings", []report{
		{WarningsSARIFArtifact, "application/sarif+json", &sarif},
		{WarningsJUnitArtifact, "application/xml", &junit},
	})
}

// tee passes a step's output on to the log and to the warnings collector, and flushes both
// when the step ends (exec.Runner flushes a writer that has Flush).
type tee struct {
	w io.Writer
	s *lintwarn.Stream
}

func (t *tee) Write(b []byte) (int, error) {
	_, _ = t.s.Write(b)
	return t.w.Write(b)
}

func (t *tee) Flush() error {
	_ = t.s.Flush()
	if f, ok := t.w.(interface{ Flush() error }); ok {
		return f.Flush()
	}
	return nil
}

func orDiscard(w io.Writer) io.Writer {
	if w == nil {
		return io.Discard
	}
	return w
}
