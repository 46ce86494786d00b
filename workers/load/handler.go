// Package load is the load stage kind: a thin adapter from a task to the loadtest engine
// (package github.com/sluice-ci/sluice/loadtest), which runs the stage's k6 script, and
// back to a Result with the summary's metrics and artifact.
package load

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"strings"

	"github.com/sluice-ci/sluice/loadtest"
	sluicev1 "github.com/sluice-ci/sluice/proto/sluice/v1"
	"github.com/sluice-ci/sluice/workers"
)

// SummaryArtifact is the name of the k6 summary JSON artifact (handleSummary data).
const SummaryArtifact = "k6-summary.json"

// Register installs the zero Handler for the load kind: k6 found by loadtest.FindK6.
func Register(r *workers.Registry) {
	r.Register(sluicev1.StageKind_STAGE_KIND_LOAD, Handler{})
}

// Handler runs load stages. A stage without a load block runs its `run:` steps like any
// kind; a stage with both runs the steps first.
type Handler struct {
	// K6 is the k6 binary; empty: loadtest.FindK6 ($SLUICE_K6, PATH, bin/k6).
	K6 string
}

// Handle runs t's load test.
func (h Handler) Handle(ctx context.Context, t *workers.Task) *sluicev1.Result {
	stage := t.Task.GetSpec()
	spec := stage.GetLoad()
	if spec == nil {
		return workers.RunHandler{}.Handle(ctx, t)
	}
	if run := stage.GetRun(); len(run) > 0 {
		if res := t.RunSteps(ctx, run); res.GetOutcome() != sluicev1.Outcome_OUTCOME_PASSED {
			return res
		}
	}
	if !filepath.IsLocal(spec.GetScript()) {
		return &sluicev1.Result{Outcome: sluicev1.Outcome_OUTCOME_ERROR,
			Message: fmt.Sprintf("load: script %q must be a path inside the source tree", spec.GetScript())}
	}
	o := loadtest.Options{
		K6: h.K6, Script: spec.GetScript(), Dir: t.Dir, Target: spec.GetTarget(),
		VUs: int(spec.GetVus()), Duration: spec.GetDuration().AsDuration(), Stages: loadStages(spec.GetStages()),
		ProcEnv: t.Env, Output: t.Stdout, TmpDir: t.TmpDir,
	}
	if t.Sandbox != nil {
		o.Prepare = t.Sandbox.Prepare
	}
	if len(spec.GetThresholds()) > 0 {
		o.Thresholds = make(map[string][]string, len(spec.GetThresholds()))
		for metric, list := range spec.GetThresholds() {
			o.Thresholds[metric] = list.GetExpressions()
		}
	}
	fmt.Fprintf(t.Log, "k6 run %s%s\n", spec.GetScript(), describe(o))
	run, err := loadtest.Run(ctx, o)
	res := result(run, err)
	if ctx.Err() != nil {
		res.Outcome = sluicev1.Outcome_OUTCOME_CANCELLED
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			res.Outcome = sluicev1.Outcome_OUTCOME_TIMED_OUT
		}
	}
	if run != nil && len(run.SummaryJSON) > 0 {
		// Uploaded even when ctx ended: the partial summary explains the stop.
		ref, err := t.UploadArtifact(context.WithoutCancel(ctx), SummaryArtifact, "application/json", bytes.NewReader(run.SummaryJSON))
		if err != nil {
			fmt.Fprintf(t.Log, "upload artifact %s: %v\n", SummaryArtifact, err)
		} else {
			res.Artifacts = append(res.Artifacts, ref)
		}
	}
	return res
}

func describe(o loadtest.Options) string {
	var parts []string
	if o.Target != "" {
		parts = append(parts, "against "+o.Target)
	}
	if o.VUs > 0 {
		parts = append(parts, fmt.Sprintf("%d VUs", o.VUs))
	}
	if o.Duration > 0 {
		parts = append(parts, "for "+o.Duration.String())
	}
	if len(parts) == 0 {
		return " (load profile from the script)"
	}
	return " " + strings.Join(parts, ", ")
}

// result maps a run to a stage result: the outcome from the error, the summary as metrics,
// a finding per crossed threshold.
func result(run *loadtest.Result, err error) *sluicev1.Result {
	res := &sluicev1.Result{Outcome: sluicev1.Outcome_OUTCOME_PASSED}
	switch {
	case err == nil:
	case errors.Is(err, loadtest.ErrK6NotFound), errors.Is(err, loadtest.ErrBadOptions):
		res.Outcome = sluicev1.Outcome_OUTCOME_ERROR
	case errors.Is(err, loadtest.ErrCanceled):
		res.Outcome = sluicev1.Outcome_OUTCOME_CANCELLED
	default:
		res.Outcome = sluicev1.Outcome_OUTCOME_FAILED
	}
	if run != nil {
		res.ExitCode = int32(run.ExitCode)
		res.Metrics = append(res.Metrics, &sluicev1.Metric{Name: "k6_wall_seconds", Value: run.Elapsed.Seconds(), Unit: "s"})
	}
	var s *loadtest.Summary
	if run != nil {
		s = run.Summary
	}
	if s != nil {
		res.Metrics = append(res.Metrics, metrics(s)...)
		for _, th := range s.Crossed() {
			res.Findings = append(res.Findings, &sluicev1.Finding{
				Rule: "load/threshold", Message: "threshold crossed: " + th.String(),
				Severity:   sluicev1.Severity_SEVERITY_HIGH,
				Properties: map[string]string{"metric": th.Metric, "expression": th.Expression},
			})
		}
	}
	switch {
	case err != nil:
		res.Message = err.Error()
	case s != nil:
		res.Message = headline(s)
	}
	return res
}

// headline is a passed run in one line.
func headline(s *loadtest.Summary) string {
	msg := fmt.Sprintf("%.0f requests (%.1f/s), p95 %.1f ms, p99 %.1f ms, %.2f%% failed",
		s.Requests, s.RequestRate, s.DurationP95, s.DurationP99, 100*s.ErrorRate)
	if n := s.ChecksPassed + s.ChecksFailed; n > 0 {
		msg += fmt.Sprintf(", checks %.2f%%", 100*s.ChecksPassed/n)
	}
	return msg + fmt.Sprintf("; %d thresholds passed", len(s.Thresholds))
}

func metrics(s *loadtest.Summary) []*sluicev1.Metric {
	out := []*sluicev1.Metric{
		{Name: "http_reqs", Value: s.Requests},
		{Name: "http_req_rate", Value: s.RequestRate, Unit: "1/s"},
		{Name: "http_req_duration_avg", Value: s.DurationAvg, Unit: "ms"},
		{Name: "http_req_duration_p50", Value: s.DurationP50, Unit: "ms"},
		{Name: "http_req_duration_p90", Value: s.DurationP90, Unit: "ms"},
		{Name: "http_req_duration_p95", Value: s.DurationP95, Unit: "ms"},
		{Name: "http_req_duration_p99", Value: s.DurationP99, Unit: "ms"},
		{Name: "http_req_duration_max", Value: s.DurationMax, Unit: "ms"},
		{Name: "http_req_failed_rate", Value: s.ErrorRate},
		{Name: "checks_passed", Value: s.ChecksPassed},
		{Name: "checks_failed", Value: s.ChecksFailed},
		{Name: "iterations", Value: s.Iterations},
		{Name: "vus_max", Value: s.VUsMax},
		{Name: "test_duration_seconds", Value: s.TestDuration.Seconds(), Unit: "s"},
	}
	ths := append([]loadtest.Threshold(nil), s.Thresholds...)
	sort.SliceStable(ths, func(i, j int) bool { return ths[i].Metric < ths[j].Metric })
	for _, th := range ths {
		v := 0.0
		if th.OK {
			v = 1
		}
		out = append(out, &sluicev1.Metric{Name: "threshold_ok", Value: v,
			Labels: map[string]string{"metric": th.Metric, "expression": th.Expression}})
	}
	return out
}

func loadStages(in []*sluicev1.LoadStage) []loadtest.Stage {
	out := make([]loadtest.Stage, 0, len(in))
	for _, s := range in {
		out = append(out, loadtest.Stage{Duration: s.GetDuration().AsDuration(), Target: int(s.GetTarget())})
	}
	return out
}
