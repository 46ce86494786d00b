// Package contract is the contract stage kind: a thin adapter from a task to the contract
// engine (package github.com/sluice-ci/sluice/contract) and back to a Result, with the
// engine's JUnit and text reports as artifacts.
package contract

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	engine "github.com/sluice-ci/sluice/contract"
	sluicev1 "github.com/sluice-ci/sluice/proto/sluice/v1"
	"github.com/sluice-ci/sluice/workers"
)

// Artifact names of a contract stage.
const (
	JUnitArtifact  = "contract-junit.xml"
	ReportArtifact = "contract-report.txt"
)

// Register installs the zero Handler for the contract kind.
func Register(r *workers.Registry) {
	r.Register(sluicev1.StageKind_STAGE_KIND_CONTRACT, Handler{})
}

// Handler runs contract stages: the stage's contract files (globs relative to the source
// tree) against its target. ${VAR} references in contracts read the task's environment.
// A stage without a contract block runs its `run:` steps like any kind; a stage with both
// runs the steps first (to seed data, say) and checks the contracts when they pass.
type Handler struct {
	// Client sends the requests; nil: the Runner's default.
	Client *http.Client
}

// Handle runs t's contracts.
func (h Handler) Handle(ctx context.Context, t *workers.Task) *sluicev1.Result {
	stage := t.Task.GetSpec()
	spec := stage.GetContract()
	if spec == nil {
		return workers.RunHandler{}.Handle(ctx, t)
	}
	if run := stage.GetRun(); len(run) > 0 {
		if res := t.RunSteps(ctx, run); res.GetOutcome() != sluicev1.Outcome_OUTCOME_PASSED {
			return res
		}
	}
	switch {
	case spec.GetTarget() == "":
		return &sluicev1.Result{Outcome: sluicev1.Outcome_OUTCOME_ERROR,
			Message: "contract: no target: set `target:` to the service's base URL, e.g. target: \"${STAGING_URL}\""}
	case len(spec.GetFiles()) == 0:
		return &sluicev1.Result{Outcome: sluicev1.Outcome_OUTCOME_ERROR,
			Message: "contract: no files: list the contract files, e.g. files: [\"contracts/*.yaml\"]"}
	}
	contracts, err := engine.LoadFiles(t.Dir, spec.GetFiles())
	if err != nil {
		return invalidResult(err)
	}
	env := envMap(t.Env)
	r := &engine.Runner{Target: spec.GetTarget(), Client: h.Client, Lookup: func(k string) (string, bool) {
		v, ok := env[k]
		return v, ok
	}}
	fmt.Fprintf(t.Log, "checking %d contracts of %s against %s\n", len(contracts), strings.Join(spec.GetFiles(), ", "), spec.GetTarget())
	rep := r.Run(ctx, contracts)
	if err := rep.WriteText(t.Stdout); err != nil {
		fmt.Fprintf(t.Log, "write the report to the log: %v\n", err)
	}
	res := result(rep)
	h.upload(ctx, t, rep, res)
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		res.Outcome, res.Message = sluicev1.Outcome_OUTCOME_TIMED_OUT, "timed out: "+res.Message
	case ctx.Err() != nil:
		res.Outcome, res.Message = sluicev1.Outcome_OUTCOME_CANCELLED, "cancelled: "+res.Message
	}
	return res
}

// result maps a report to a stage result: PASSED or FAILED, a finding per failed step, the
// counts as metrics.
func result(rep *engine.Report) *sluicev1.Result {
	passed, failed, sp, sf, ss := rep.Counts()
	res := &sluicev1.Result{Outcome: sluicev1.Outcome_OUTCOME_PASSED, Message: rep.Summary()}
	if failed > 0 {
		res.Outcome = sluicev1.Outcome_OUTCOME_FAILED
	}
	for _, m := range []struct {
		name  string
		value int
	}{{"contracts_passed", passed}, {"contracts_failed", failed}, {"steps_passed", sp}, {"steps_failed", sf}, {"steps_skipped", ss}} {
		res.Metrics = append(res.Metrics, &sluicev1.Metric{Name: m.name, Value: float64(m.value)})
	}
	res.Metrics = append(res.Metrics, &sluicev1.Metric{Name: "duration_seconds", Value: rep.Elapsed.Seconds(), Unit: "s"})
	for _, c := range rep.Contracts {
		for _, s := range c.Steps {
			if s.Status != engine.StepFailed {
				continue
			}
			res.Findings = append(res.Findings, &sluicev1.Finding{
				Rule: "contract/" + s.Kind, File: c.Contract.File, Line: int32(s.Step.Line),
				Message:    fmt.Sprintf("%s, step %q: %s", c.Contract.Name, s.Step.Name, s.FailureMessage()),
				Severity:   sluicev1.Severity_SEVERITY_HIGH,
				Properties: map[string]string{"contract": c.Contract.Name, "step": s.Step.Name, "request": s.Method + " " + s.Path},
			})
		}
	}
	return res
}

// invalidResult fails a stage whose contract files do not load, with a finding per problem.
func invalidResult(err error) *sluicev1.Result {
	res := &sluicev1.Result{Outcome: sluicev1.Outcome_OUTCOME_FAILED, Message: "contract files are invalid: " + err.Error()}
	problems := engine.Problems(err)
	if problems == nil {
		res.Findings = append(res.Findings, &sluicev1.Finding{Rule: "contract/invalid", Message: err.Error(), Severity: sluicev1.Severity_SEVERITY_HIGH})
	}
	for _, p := range problems {
		res.Findings = append(res.Findings, &sluicev1.Finding{Rule: "contract/invalid", File: p.File, Line: int32(p.Line), Message: p.Text(), Severity: sluicev1.Severity_SEVERITY_HIGH})
	}
	return res
}

func (h Handler) upload(ctx context.Context, t *workers.Task, rep *engine.Report, res *sluicev1.Result) {
	// Artifacts are uploaded even when ctx ended: they explain the partial report.
	ctx = context.WithoutCancel(ctx)
	for _, a := range []struct {
		name, contentType string
		write             func(*bytes.Buffer) error
	}{
		{JUnitArtifact, "application/xml", func(b *bytes.Buffer) error { return rep.WriteJUnit(b) }},
		{ReportArtifact, "text/plain; charset=utf-8", func(b *bytes.Buffer) error { return rep.WriteText(b) }},
	} {
		var b bytes.Buffer
		if err := a.write(&b); err != nil {
			fmt.Fprintf(t.Log, "render artifact %s: %v\n", a.name, err)
			continue
		}
		ref, err := t.UploadArtifact(ctx, a.name, a.contentType, &b)
		if err != nil {
			fmt.Fprintf(t.Log, "upload artifact %s: %v\n", a.name, err)
			continue
		}
		res.Artifacts = append(res.Artifacts, ref)
	}
}

// envMap turns a KEY=VALUE list into a map; later entries win, as in a process environment.
func envMap(env []string) map[string]string {
	m := make(map[string]string, len(env))
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok {
			m[k] = v
		}
	}
	return m
}
