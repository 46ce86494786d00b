package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/sluice-ci/sluice/coordinator"
	sluicev1 "github.com/sluice-ci/sluice/proto/sluice/v1"
)

func newRunsCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "runs",
		Short: "List runs and show one",
		Long: `Inspect runs through the coordinator's run API: 'runs list' for recent runs, 'runs show'
for one run's stages, statuses, attempts and durations.`,
		Example: `  sluice runs list
  sluice runs list --pipeline hello --limit 5
  sluice runs show 01JD3K5W7N8Q2R4T6V8X0Z2B4D
  sluice runs show 01JD3K5W7N8Q2R4T6V8X0Z2B4D -o json | jq '.stages[] | {name, status}'`,
		Args: noArgs,
		RunE: showHelp,
	}
	cmd.AddCommand(newRunsListCmd(a), newRunsShowCmd(a))
	return cmd
}

func newRunsListCmd(a *app) *cobra.Command {
	var (
		pipeline string
		limit    int32
		out      output
	)
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List recent runs, newest first",
		Long: `List recent runs, newest first: id, pipeline, status, ref, stage counts and when each
was created. -o json prints one protojson RunSummary per line instead, -o yaml one YAML
document per run.`,
		Example: `  sluice runs list
  sluice runs list --pipeline hello --limit 5
  sluice runs list -o json | jq -r 'select(.status == "RUN_STATUS_FAILED") | .id'`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := out.check(cmd); err != nil {
				return err
			}
			if limit < 0 {
				return usageErrorf(cmd, "--limit %d: must be 0 (the coordinator's default) or more", limit)
			}
			c, err := a.connect(cmd.Context(), "sluice runs list")
			if err != nil {
				return err
			}
			defer c.Close()
			ctx, cancel := c.apiCtx(cmd.Context())
			defer cancel()
			runs, err := c.api.List(ctx, &sluicev1.ListRunsRequest{Pipeline: pipeline, Limit: limit})
			if err = c.explain(ctx, err); err != nil {
				return fmt.Errorf("list runs: %w", err)
			}
			if !out.table() {
				for _, r := range runs {
					if err := out.write(a.stdout, r); err != nil {
						return err
					}
				}
				return nil
			}
			if len(runs) == 0 {
				fmt.Fprintln(a.stdout, "no runs yet; start one with `sluice run PIPELINE.yaml`")
				return nil
			}
			t := newTable(a.stdout)
			fmt.Fprintln(t, "ID\tPIPELINE\tSTATUS\tREF\tSTAGES\tCREATED\tDURATION")
			for _, r := range runs {
				dur := span(r.GetCreatedAt(), r.GetFinishedAt())
				if dur == "" {
					dur = "-"
				}
				stages := fmt.Sprintf("%d/%d passed", r.GetStagesPassed(), r.GetStagesTotal())
				if r.GetStagesFailed() > 0 {
					stages += fmt.Sprintf(", %d failed", r.GetStagesFailed())
				}
				fmt.Fprintf(t, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.GetId(), r.GetPipeline(), r.GetStatus().Short(), r.GetRef(), stages, fmtTime(r.GetCreatedAt()), dur)
			}
			return t.Flush()
		},
	}
	cmd.Flags().StringVar(&pipeline, "pipeline", "", "only runs of this pipeline")
	cmd.Flags().Int32Var(&limit, "limit", 20, "at most this many runs")
	addOutputFlag(cmd, &out, "RunSummary")
	return cmd
}

func newRunsShowCmd(a *app) *cobra.Command {
	var out output
	cmd := &cobra.Command{
		Use:   "show ID",
		Short: "Show one run: its status and every stage",
		Long: `Show one run: pipeline, status, ref, source and timing, then a line per stage with its
kind, status, attempt, duration and message, and for each failed stage its findings (a
failed test with its own output: the assertion, the panic). -o json prints the whole
RunState as protojson (-o yaml as YAML), spec and per-shard detail included.`,
		Example: `  sluice runs show 01JD3K5W7N8Q2R4T6V8X0Z2B4D
  sluice runs show 01JD3K5W7N8Q2R4T6V8X0Z2B4D -o yaml`,
		Args:              exactArgs("ID"),
		ValidArgsFunction: completeRun(a),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := out.check(cmd); err != nil {
				return err
			}
			c, err := a.connect(cmd.Context(), "sluice runs show")
			if err != nil {
				return err
			}
			defer c.Close()
			run, err := getRun(cmd, c, args[0])
			if err != nil {
				return err
			}
			if !out.table() {
				return out.write(a.stdout, run)
			}
			return writeRun(a, run)
		},
	}
	addOutputFlag(cmd, &out, "RunState")
	return cmd
}

// getRun fetches a run; an unknown id is reported as such, with where to find the known ones.
func getRun(cmd *cobra.Command, c *conn, id string) (*sluicev1.RunState, error) {
	ctx, cancel := c.apiCtx(cmd.Context())
	defer cancel()
	run, err := c.api.Get(ctx, id)
	if err = c.explain(ctx, err); err != nil {
		return nil, runError(id, err)
	}
	return run, nil
}

// runError words a run API error for the user; it keeps the sentinel for the exit code.
func runError(id string, err error) error {
	if errors.Is(err, coordinator.ErrNotFound) {
		return fmt.Errorf("run %q not found (list the runs with `sluice runs list`): %w", id, err)
	}
	return fmt.Errorf("run %s: %w", id, err)
}

func writeRun(a *app, run *sluicev1.RunState) error {
	t := newTable(a.stdout)
	fmt.Fprintf(t, "run\t%s\n", run.GetId())
	fmt.Fprintf(t, "pipeline\t%s\n", run.GetPipeline())
	fmt.Fprintf(t, "status\t%s\n", run.GetStatus().Short())
	fmt.Fprintf(t, "ref\t%s\n", run.GetRef())
	if d := run.GetSourceDigest(); d != "" {
		fmt.Fprintf(t, "source\t%s\n", d)
	}
	fmt.Fprintf(t, "created\t%s\n", fmtTime(run.GetCreatedAt()))
	if run.GetFinishedAt() != nil {
		fmt.Fprintf(t, "finished\t%s (%s)\n", fmtTime(run.GetFinishedAt()), span(run.GetCreatedAt(), run.GetFinishedAt()))
	}
	if m := run.GetMessage(); m != "" {
		fmt.Fprintf(t, "message\t%s\n", oneLine(m))
	}
	if err := t.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(a.stdout)
	if err := writeStageTable(a.stdout, run); err != nil {
		return err
	}
	// Why each failed stage failed: its findings, a failed test's with its own message.
	for _, s := range run.GetStages() {
		if s.GetStatus() != sluicev1.StageStatus_STAGE_STATUS_FAILED || len(s.GetFindings()) == 0 {
			continue
		}
		fmt.Fprintf(a.stdout, "\n%s failed (attempt %d):\n", s.GetName(), s.GetAttempt())
		writeFindings(a.stdout, run, s, s.GetAttempt(), "  ")
	}
	return nil
}
