// Package backupverify runs backup-verify stages: a thin adapter from a worker's task to
// the backupverify engine and back to a result, with the reports as artifacts.
//
// A stage's backup_verify block names the environment variable that holds the database
// URL (dsn_env: a secret of the worker's environment, never in the pipeline) and the
// baseline file in the source tree. The live database is verified against the baseline;
// with `restore: true`, or a `dump:` file, the backup is also restored into a throwaway
// cluster (or Handler.ScratchDSN) and compared with the baseline and the live database.
// A stage's `run:` steps, if any, run first (a migration to check, say).
package backupverify

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	bv "github.com/sluice-ci/sluice/backupverify"
	sluicev1 "github.com/sluice-ci/sluice/proto/sluice/v1"
	"github.com/sluice-ci/sluice/workers"
)

// Artifact names, under the stage's artifacts.
const (
	ArtifactVerify        = "backup-verify/verify.json"
	ArtifactRestoreVerify = "backup-verify/restore-verify.json"
	ArtifactText          = "backup-verify/report.txt"
)

// Handler runs backup-verify tasks. The zero value is ready: secrets from the worker's
// environment, binaries found on the machine, restores into throwaway clusters.
type Handler struct {
	// PGBin is the directory of the PostgreSQL binaries; empty searches
	// /usr/lib/postgresql/*/bin, then PATH.
	PGBin string
	// ScratchDSN is a server to restore on instead of a throwaway cluster.
	ScratchDSN string
	// WorkDir holds dumps and throwaway clusters; default os.TempDir().
	WorkDir string
}

// Register installs the zero Handler for the backup-verify kind.
func Register(r *workers.Registry) {
	r.Register(sluicev1.StageKind_STAGE_KIND_BACKUP_VERIFY, Handler{})
}

// Handle runs the stage's `run:` steps, if any, then verifies; a stage without a
// backup_verify: block only runs its steps.
func (h Handler) Handle(ctx context.Context, t *workers.Task) *sluicev1.Result {
	stage := t.Task.GetSpec()
	spec := stage.GetBackupVerify()
	if spec == nil {
		// Every kind runs plain `run:` steps; the engine needs its block.
		if len(stage.GetRun()) > 0 {
			return t.RunSteps(ctx, stage.GetRun())
		}
		return errorResult("stage %s has no backup_verify: block; add one, e.g. "+
			"`backup_verify: {dsn_env: DATABASE_URL, baseline: backup/baseline.json}`", stage.GetName())
	}
	if len(stage.GetRun()) > 0 {
		if res := t.RunSteps(ctx, stage.GetRun()); res.GetOutcome() != sluicev1.Outcome_OUTCOME_PASSED {
			return res
		}
	}
	job, res := h.prepare(t, spec)
	if res != nil {
		return res
	}
	return job.run(ctx, t)
}

// job is a prepared stage: everything read and checked before touching the database.
type job struct {
	h        Handler
	spec     *sluicev1.BackupVerifySpec
	dsn      string
	baseline *bv.Baseline
	policy   bv.Policy
	dump     string // a given dump file; empty dumps the database
	restore  bool
}

func (h Handler) prepare(t *workers.Task, spec *sluicev1.BackupVerifySpec) (*job, *sluicev1.Result) {
	j := &job{h: h, spec: spec, restore: spec.GetRestore() || spec.GetDump() != ""}
	name := spec.GetDsnEnv()
	if name == "" {
		return nil, errorResult("backup_verify.dsn_env is required: name the environment variable of the worker " +
			"that holds the database URL, e.g. `dsn_env: DATABASE_URL` (the URL itself never goes in the pipeline)")
	}
	j.dsn = h.secret(t, name)
	if j.dsn == "" {
		return nil, errorResult("secret %s (backup_verify.dsn_env) is not set in the worker's environment: "+
			"export the database URL as %s where the worker runs", name, name)
	}
	if spec.GetBaseline() == "" {
		return nil, errorResult("backup_verify.baseline is required: capture one with " +
			"`sluice backupverify baseline --dsn-env DATABASE_URL --out backup/baseline.json` and commit it")
	}
	path, err := inTree(t.Dir, spec.GetBaseline(), "baseline")
	if err != nil {
		return nil, errorResult("%v", err)
	}
	if j.baseline, err = bv.ReadBaselineFile(path); err != nil {
		msg := strings.ReplaceAll(err.Error(), path, spec.GetBaseline())
		if errors.Is(err, os.ErrNotExist) {
			msg += " (is it committed, and was the run submitted with its source?)"
		}
		return nil, errorResult("%s", msg)
	}
	if d := spec.GetDump(); d != "" {
		if filepath.IsAbs(d) {
			j.dump = d
		} else if j.dump, err = inTree(t.Dir, d, "dump"); err != nil {
			return nil, errorResult("%v", err)
		}
	}
	// proto3 cannot tell an unset max_drop_pct from 0: unset takes the default.
	j.policy = bv.DefaultPolicy()
	j.policy.MinRows = spec.GetMinRows()
	if p := spec.GetMaxDropPct(); p > 0 {
		j.policy.MaxDropPct = p
	}
	if err := j.policy.Validate(); err != nil {
		return nil, errorResult("backup_verify: %v", err)
	}
	return j, nil
}

// secret reads name from the task's environment (when the stage lists it in secrets:)
// or else from the worker's own.
func (h Handler) secret(t *workers.Task, name string) string {
	prefix := name + "="
	for _, kv := range t.Env {
		if v, ok := strings.CutPrefix(kv, prefix); ok && v != "" {
			return v
		}
	}
	v, _ := t.Secret(name)
	return v
}

// inTree resolves a path of the spec inside the source tree, refusing one that leaves it.
func inTree(dir, p, what string) (string, error) {
	if !filepath.IsLocal(filepath.FromSlash(p)) {
		return "", fmt.Errorf("backup_verify.%s %q must be a relative path inside the repository", what, p)
	}
	return filepath.Join(dir, filepath.FromSlash(p)), nil
}

func (j *job) run(ctx context.Context, t *workers.Task) *sluicev1.Result {
	fmt.Fprintf(t.Log, "verifying %s against %s (%d tables, captured %s)\n", bv.DescribeDSN(j.dsn), j.spec.GetBaseline(),
		len(j.baseline.Tables), j.baseline.CapturedAt.Format("2006-01-02 15:04 MST"))
	live, err := bv.VerifyLive(ctx, j.dsn, j.baseline, j.policy, bv.CaptureOptions{})
	if err != nil {
		return failure(ctx, "verify "+bv.DescribeDSN(j.dsn), err)
	}
	reports := []*bv.Report{live}
	if j.restore {
		rr, err := bv.RestoreVerify(ctx, bv.RestoreOptions{
			Baseline: j.baseline, Policy: j.policy, SourceDSN: j.dsn, DumpFile: j.dump,
			ScratchDSN: j.h.ScratchDSN, PGBin: j.h.PGBin, WorkDir: j.h.WorkDir, Log: t.Log,
		})
		if err != nil {
			return failure(ctx, "restore-verify", err)
		}
		reports = append(reports, rr)
	}
	return result(ctx, t, reports)
}

// result maps the reports to the stage's result and stores them as artifacts.
func result(ctx context.Context, t *workers.Task, reports []*bv.Report) *sluicev1.Result {
	res := &sluicev1.Result{Outcome: sluicev1.Outcome_OUTCOME_PASSED}
	var text bytes.Buffer
	var summaries []string
	for _, r := range reports {
		if err := r.WriteText(&text); err != nil {
			t.Logger.Warn("render backup-verify report", "err", err)
		}
		text.WriteString("\n")
		summaries = append(summaries, r.Check+": "+r.Summary)
		if !r.Passed && res.Outcome == sluicev1.Outcome_OUTCOME_PASSED {
			res.Outcome = sluicev1.Outcome_OUTCOME_FAILED
			res.Message = r.Check + " failed: " + r.Summary
		}
		for _, f := range r.Findings {
			res.Findings = append(res.Findings, finding(r.Check, f))
		}
		res.Metrics = append(res.Metrics, metrics(r)...)
	}
	if res.Outcome == sluicev1.Outcome_OUTCOME_PASSED {
		res.Message = strings.Join(summaries, "; ")
	}
	if _, err := t.Stdout.Write(text.Bytes()); err != nil {
		t.Logger.Warn("write backup-verify report to the log", "err", err)
	}

	uploads := []artifact{{ArtifactText, "text/plain; charset=utf-8", text.Bytes()}}
	for _, r := range reports {
		name := ArtifactVerify
		if r.Check == bv.CheckRestoreVerify {
			name = ArtifactRestoreVerify
		}
		uploads = append(uploads, artifact{name, "application/json", r.JSON()})
	}
	for _, u := range uploads {
		ref, err := t.UploadArtifact(ctx, u.name, u.contentType, bytes.NewReader(u.data))
		if err != nil {
			// The verdict stands without its artifact; the result says what is missing.
			fmt.Fprintf(t.Log, "warning: %v\n", err)
			if res.Detail == nil {
				res.Detail = map[string]string{}
			}
			res.Detail["artifacts"] = err.Error()
			continue
		}
		res.Artifacts = append(res.Artifacts, ref)
	}
	return res
}

type artifact struct {
	name, contentType string
	data              []byte
}

var severities = map[bv.Severity]sluicev1.Severity{
	bv.SeverityInfo: sluicev1.Severity_SEVERITY_INFO, bv.SeverityLow: sluicev1.Severity_SEVERITY_LOW,
	bv.SeverityMedium: sluicev1.Severity_SEVERITY_MEDIUM, bv.SeverityHigh: sluicev1.Severity_SEVERITY_HIGH,
	bv.SeverityCritical: sluicev1.Severity_SEVERITY_CRITICAL,
}

// finding carries the table, column and comparison in properties: a database finding
// has no file and line.
func finding(check string, f bv.Finding) *sluicev1.Finding {
	props := map[string]string{"check": check, "against": f.Against}
	for k, v := range map[string]string{"table": f.Table, "column": f.Column, "object": f.Object, "expected": f.Expected, "actual": f.Actual} {
		if v != "" {
			props[k] = v
		}
	}
	sum := sha256.Sum256([]byte(strings.Join([]string{check, f.Rule, f.Table, f.Column, f.Object, f.Against}, "\x00")))
	return &sluicev1.Finding{
		Rule: f.Rule, Message: f.Message, Severity: severities[f.Severity],
		Fingerprint: hex.EncodeToString(sum[:8]), Properties: props,
	}
}

func metrics(r *bv.Report) []*sluicev1.Metric {
	labels := map[string]string{"check": r.Check}
	var rows int64
	for _, t := range r.Tables {
		if t.Rows != nil {
			rows += *t.Rows
		}
	}
	ms := []*sluicev1.Metric{
		{Name: "tables", Value: float64(len(r.Tables)), Labels: labels},
		{Name: "rows", Value: float64(rows), Labels: labels},
		{Name: "problems", Value: float64(len(r.Problems())), Labels: labels},
	}
	if ri := r.Restore; ri != nil {
		for _, m := range []struct {
			name string
			v    float64
		}{{"dump_seconds", ri.DumpSeconds}, {"scratch_seconds", ri.ScratchSeconds}, {"restore_seconds", ri.RestoreSeconds},
			{"verify_seconds", ri.VerifySeconds}, {"total_seconds", ri.TotalSeconds}} {
			ms = append(ms, &sluicev1.Metric{Name: m.name, Value: m.v, Unit: "s", Labels: labels})
		}
	}
	return ms
}

// failure is the result of a check that could not run.
func failure(ctx context.Context, what string, err error) *sluicev1.Result {
	res := errorResult("%s: %v", what, err)
	if errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil {
		res.Outcome = sluicev1.Outcome_OUTCOME_TIMED_OUT
	} else if errors.Is(err, context.Canceled) && ctx.Err() != nil {
		res.Outcome = sluicev1.Outcome_OUTCOME_CANCELLED
	}
	return res
}

func errorResult(format string, args ...any) *sluicev1.Result {
	return &sluicev1.Result{Outcome: sluicev1.Outcome_OUTCOME_ERROR, Message: fmt.Sprintf(format, args...)}
}
