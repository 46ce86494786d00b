package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/sluice-ci/sluice/coordinator/spec"
	"github.com/sluice-ci/sluice/internal/source"
	sluicev1 "github.com/sluice-ci/sluice/proto/sluice/v1"
)

// defaultRef is the ref of a run whose source has no git branch to read.
const defaultRef = "main"

type runOptions struct {
	source   string
	noSource bool
	ref      string
	sets     []string
	detach   bool
}

func newRunCmd(a *app) *cobra.Command {
	var o runOptions
	cmd := &cobra.Command{
		Use:   "run PIPELINE.yaml",
		Short: "Submit a run of a pipeline and follow it to the end",
		Long: `Submit a run of a pipeline to the fleet and follow it: one line per stage transition,
the output of every stage that fails, until the run passes, fails or is cancelled.

The pipeline file is parsed and validated here first, so a mistake in it is reported with
its file, line and field before anything is sent. The source tree the stages run in
(--source: a directory, whose .gitignore is honoured, or a .tar.gz) is uploaded to the
fleet's object store by content digest; workers fetch it from there. By default it is the
directory holding the pipeline file.

--ref is the branch the run is for; stages with 'when: {branch: ...}' run only on matching
refs. It defaults to the current git branch of the source directory, or "main" when there
is none.

Ctrl-C stops following, not the run; 'sluice cancel ID' stops the run.

Exit codes: 0 the run passed, 1 it failed or was cancelled, 2 bad pipeline or flags,
3 NATS or the coordinator cannot be reached, 130 interrupted while following.`,
		Example: `  # Run the example pipeline on a fleet started with 'sluice dev':
  sluice run examples/hello/pipeline.yaml

  # Run it for a branch, with a variable the pipeline reads as ${STAGING_URL}:
  sluice run ci/pipeline.yaml --source . --ref release-1.2 --set STAGING_URL=http://10.0.0.5:8080

  # Submit only, and follow it later:
  id=$(sluice run ci/pipeline.yaml --detach)
  sluice events --run "$id" --follow`,
		Args: exactArgs("PIPELINE.yaml"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.runPipeline(cmd, args[0], o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.source, "source", "", "source tree to run the stages in: a directory or a .tar.gz (default: the pipeline file's directory)")
	f.BoolVar(&o.noSource, "no-source", false, "submit without a source tree (stages start in an empty directory)")
	f.StringVar(&o.ref, "ref", "", `branch the run is for (default: the source's current git branch, else "main")`)
	f.StringArrayVar(&o.sets, "set", nil, "set the pipeline variable `KEY=VALUE` (repeatable); wins over the pipeline's env and the environment")
	f.BoolVar(&o.detach, "detach", false, "print the run id and exit without following the run")
	return cmd
}

func (a *app) runPipeline(cmd *cobra.Command, file string, o runOptions) error {
	ctx := cmd.Context()
	if o.noSource && o.source != "" {
		return usageErrorf(cmd, "--source and --no-source exclude each other")
	}
	vars, err := parseSets(cmd, o.sets)
	if err != nil {
		return err
	}
	p, err := parsePipeline(file, vars, a.stderr)
	if err != nil {
		return err
	}
	src := o.source
	if src == "" && !o.noSource {
		src = filepath.Dir(file)
		a.note("source: %s, the pipeline file's directory (--source to choose another, --no-source for none)", src)
	}
	if src != "" {
		if _, err := os.Stat(src); err != nil {
			return usageError(cmd, fmt.Errorf("--source: %w", err))
		}
	}
	ref := o.ref
	if ref == "" {
		ref = a.defaultRef(ctx, src, file)
	}
	commit, branch := gitCommit(ctx, src)
	if o.ref != "" && branch != "" && strings.TrimPrefix(o.ref, "refs/heads/") != branch {
		return usageErrorf(cmd, "--ref %s, but the source %s is a checkout of branch %s: a run records its commit, and gates on a branch open for that branch's code only; check out %s, or pass --ref %s", o.ref, src, branch, o.ref, branch)
	}

	c, err := a.connect(ctx, "sluice run")
	if err != nil {
		return err
	}
	defer c.Close()

	run, digest, err := submitRun(ctx, c, p, src, ref, commit, vars)
	if err != nil {
		return err
	}
	if o.detach {
		fmt.Fprintln(a.stdout, run.GetId())
		return nil
	}
	fmt.Fprintf(a.stdout, "run %s: %s, %d stages, ref %s", run.GetId(), p.GetName(), len(p.GetStages()), ref)
	if digest != "" {
		fmt.Fprintf(a.stdout, ", source %s", shortDigest(digest))
	}
	if commit != "" {
		fmt.Fprintf(a.stdout, ", commit %s", shortCommit(commit))
	}
	fmt.Fprintln(a.stdout)
	return a.follow(ctx, c, run)
}

// submitRun uploads the source tree src (none when empty) and submits a run of p. It returns
// the run's first state and the source's digest.
func submitRun(ctx context.Context, c *conn, p *sluicev1.PipelineSpec, src, ref, commit string, vars map[string]string) (_ *sluicev1.RunState, _ string, err error) {
	ctx, cancel := c.bind(ctx)
	defer cancel()
	defer func() { err = c.explain(ctx, err) }()
	var digest string
	if src != "" {
		store, err := c.js.ObjectStore(ctx, c.names.SourcesStore())
		if err != nil {
			return nil, "", fmt.Errorf("sources object store %s on %s: %w", c.names.SourcesStore(), c.url, err)
		}
		digest, err = source.Upload(ctx, store, src, source.DefaultLimits())
		if err != nil {
			if errors.Is(err, source.ErrTooLarge) || errors.Is(err, source.ErrUnsafeEntry) {
				return nil, "", withCode(exitUsage, fmt.Errorf("source %s: %w", src, err))
			}
			return nil, "", fmt.Errorf("upload source %s: %w", src, err)
		}
	}
	actx, acancel := c.apiCtx(ctx)
	defer acancel()
	run, err := c.api.Submit(actx, &sluicev1.SubmitRunRequest{Spec: p, Ref: ref, Commit: commit, Vars: vars, SourceDigest: digest})
	if err != nil {
		return nil, "", fmt.Errorf("submit %s: %w", p.GetFile(), err)
	}
	return run, digest, nil
}

// follow prints the run to its end and turns its outcome into the exit code. The outcome is
// the coordinator's answer, not the last event: an event on the stream proves nothing about
// who stored it, and CI branches on this exit code.
func (a *app) follow(ctx context.Context, c *conn, run *sluicev1.RunState) error {
	status, err := followRun(ctx, c, run, a.stdout)
	if err == nil {
		status, err = finalStatus(ctx, c, run.GetId())
	}
	if err != nil {
		if ctx.Err() != nil {
			a.note("\nstopped following; run %s continues. Follow it again with `sluice events --run %s --follow`, stop it with `sluice cancel %s`.", run.GetId(), run.GetId(), run.GetId())
			return &exitError{code: exitInterrupted, err: ctx.Err(), quiet: true}
		}
		return fmt.Errorf("follow run %s: %w", run.GetId(), err)
	}
	if status != sluicev1.RunStatus_RUN_STATUS_PASSED {
		return withCode(exitFailed, fmt.Errorf("run %s %s; details: sluice runs show %s", run.GetId(), status.Short(), run.GetId()))
	}
	return nil
}

// parsePipeline parses and validates a pipeline file. Its problems are printed as they are,
// one "FILE:LINE:COL: FIELD: MSG" per line, the form editors jump to.
func parsePipeline(file string, vars map[string]string, stderr io.Writer) (*sluicev1.PipelineSpec, error) {
	p, err := spec.ParseFile(file, vars)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return nil, &exitError{code: exitUsage, err: err, quiet: true}
	}
	return p, nil
}

// parseSets turns repeated --set KEY=VALUE flags into vars.
func parseSets(cmd *cobra.Command, sets []string) (map[string]string, error) {
	vars := make(map[string]string, len(sets))
	for _, s := range sets {
		k, v, ok := strings.Cut(s, "=")
		if !ok || k == "" {
			return nil, usageErrorf(cmd, "--set %q: want KEY=VALUE", s)
		}
		vars[k] = v
	}
	return vars, nil
}

// defaultRef is the current git branch of the source directory (or of the pipeline file's
// directory when the source is an archive or absent), else "main". It says which.
func (a *app) defaultRef(ctx context.Context, src, file string) string {
	dir := src
	if fi, err := os.Stat(src); src == "" || err != nil || !fi.IsDir() {
		dir = filepath.Dir(file)
	}
	out, err := exec.CommandContext(ctx, "git", "-C", dir, "symbolic-ref", "--quiet", "--short", "HEAD").Output()
	if branch := strings.TrimSpace(string(out)); err == nil && branch != "" {
		return branch
	}
	a.note("ref: %s has no current git branch; using %q (pass --ref to choose)", dir, defaultRef)
	return defaultRef
}

// shortDigest abbreviates "sha256:<hex>" for display.
func shortDigest(d string) string {
	algo, hex, ok := strings.Cut(d, ":")
	if !ok || len(hex) <= 12 {
		return d
	}
	return algo + ":" + hex[:12]
}

// finalStatus asks the coordinators for a run's status once the events say it ended.
func finalStatus(ctx context.Context, c *conn, id string) (sluicev1.RunStatus, error) {
	actx, cancel := c.apiCtx(ctx)
	defer cancel()
	st, err := c.api.Get(actx, id)
	if err = c.explain(actx, err); err != nil {
		return sluicev1.RunStatus_RUN_STATUS_UNSPECIFIED, err
	}
	if !st.GetStatus().Terminal() {
		return st.GetStatus(), fmt.Errorf("the events say run %s ended, but the coordinator says it is %s: the events stream holds a message the coordinator did not publish", id, st.GetStatus().Short())
	}
	return st.GetStatus(), nil
}

// gitCommit is the commit of the checkout at src ("-dirty" when it has uncommitted
// changes) and its current branch ("" when detached); both empty when src is not a git
// checkout.
func gitCommit(ctx context.Context, src string) (commit, branch string) {
	fi, err := os.Stat(src)
	if src == "" || err != nil || !fi.IsDir() {
		return "", ""
	}
	git := func(args ...string) (string, bool) {
		out, err := exec.CommandContext(ctx, "git", append([]string{"-C", src}, args...)...).Output()
		return strings.TrimSpace(string(out)), err == nil
	}
	commit, ok := git("rev-parse", "--verify", "--quiet", "HEAD")
	if !ok || commit == "" {
		return "", ""
	}
	if status, ok := git("status", "--porcelain", "--untracked-files=no", "--", "."); ok && status != "" {
		commit += "-dirty"
	}
	branch, _ = git("symbolic-ref", "--quiet", "--short", "HEAD")
	return commit, branch
}

func shortCommit(c string) string {
	base, dirty := strings.CutSuffix(c, "-dirty")
	if len(base) > 12 {
		base = base[:12]
	}
	if dirty {
		base += "-dirty"
	}
	return base
}
