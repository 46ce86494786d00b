package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	sluicev1 "github.com/sluice-ci/sluice/proto/sluice/v1"
)

func newDemoCmd(a *app) *cobra.Command {
	var (
		example     string
		keepData    bool
		keepRunning bool
	)
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run the example pipeline end to end on a throwaway fleet",
		Long: `Start a fleet as 'sluice dev' does, on a temporary data directory and free ports, run the
example pipeline (examples/hello/pipeline.yaml, with examples/hello as its source tree and
ref main) to the end while printing its progress as 'sluice run' does, then print a summary
of every stage and stop the fleet.

The example is the seven-stage gate of a web service: lint || typecheck, then
test || governance, then backup-verify || e2e, then a deploy gate that runs on main only.
Each stage runs real commands (gofmt, go vet, go test, small checks) in the fetched tree.

Run it from the repository root, or point --example at the example's directory.
Exit codes: 0 the pipeline passed, 1 it failed, 2 the example is missing or invalid.`,
		Example: `  sluice demo
  # Keep the fleet up afterwards to look around with the dashboard and 'sluice runs list':
  sluice demo --keep-running`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			file := filepath.Join(example, "pipeline.yaml")
			if _, err := os.Stat(file); err != nil {
				return usageErrorf(cmd, "example pipeline %s: %w; run `sluice demo` from the repository root or pass --example DIR", file, err)
			}
			if !cmd.Flags().Changed("log-level") {
				// The fleet's info logs would bury the run's progress.
				a.log = slog.New(slog.NewTextHandler(a.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
			}
			p, err := parsePipeline(file, nil, a.stderr)
			if err != nil {
				return err
			}
			dataDir, err := os.MkdirTemp("", "sluice-demo-")
			if err != nil {
				return fmt.Errorf("demo data dir: %w", err)
			}
			if !keepData {
				defer os.RemoveAll(dataDir)
			}

			f, err := a.startFleet(ctx, fleetOptions{
				dataDir:     dataDir,
				natsListen:  "127.0.0.1:-1",
				httpAddr:    "127.0.0.1:0",
				kinds:       sluicev1.AllKinds(),
				pool:        "default",
				concurrency: 4,
			})
			if err != nil {
				return err
			}
			defer func() {
				if err := f.shutdown(); err != nil {
					a.log.Warn("demo fleet shutdown", "err", err)
				}
			}()
			fmt.Fprintf(a.stdout, "fleet up: NATS %s, dashboard %s, data %s\n", f.natsURL, f.httpURL, dataDir)

			a.natsURL = f.natsURL
			c, err := a.connect(ctx, "sluice demo")
			if err != nil {
				return err
			}
			defer c.Close()
			run, digest, err := submitRun(ctx, c, p, example, defaultRef, nil)
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "run %s: %s, %d stages, ref %s, source %s\n", run.GetId(), p.GetName(), len(p.GetStages()), defaultRef, shortDigest(digest))
			status, err := followRun(ctx, c, run, a.stdout)
			if err != nil {
				if ctx.Err() != nil {
					a.note("\ninterrupted; stopping the demo fleet")
					return &exitError{code: exitInterrupted, err: ctx.Err(), quiet: true}
				}
				return fmt.Errorf("follow run %s: %w", run.GetId(), err)
			}
			final, err := getRun(cmd, c, run.GetId())
			if err != nil {
				return err
			}
			fmt.Fprintln(a.stdout)
			if err := writeStageTable(a.stdout, final); err != nil {
				return err
			}
			fmt.Fprintln(a.stdout)
			fmt.Fprintf(a.stdout, "demo %s: %s in %s\n", status.Short(), stageCounts(final), span(final.GetCreatedAt(), final.GetFinishedAt()))
			if keepRunning {
				fmt.Fprintf(a.stdout, "fleet still running: export SLUICE_NATS=%s; dashboard %s; Ctrl-C stops it\n", f.natsURL, f.httpURL)
				if err := f.wait(ctx); err != nil {
					return err
				}
			}
			if status != sluicev1.RunStatus_RUN_STATUS_PASSED {
				return withCode(exitFailed, errors.New("the example pipeline did not pass; see the failed stage's output above"))
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&example, "example", filepath.Join("examples", "hello"), "directory of the example: its pipeline.yaml and source tree")
	f.BoolVar(&keepData, "keep-data", false, "keep the temporary data directory")
	f.BoolVar(&keepRunning, "keep-running", false, "keep the fleet running after the run, until Ctrl-C")
	return cmd
}

// stageCounts summarises a run's stages: "7 stages: 6 passed, 1 skipped".
func stageCounts(run *sluicev1.RunState) string {
	counts := map[sluicev1.StageStatus]int{}
	var order []sluicev1.StageStatus
	for _, s := range run.GetStages() {
		if counts[s.GetStatus()] == 0 {
			order = append(order, s.GetStatus())
		}
		counts[s.GetStatus()]++
	}
	out := fmt.Sprintf("%d stages", len(run.GetStages()))
	for i, st := range order {
		sep := ", "
		if i == 0 {
			sep = ": "
		}
		out += fmt.Sprintf("%s%d %s", sep, counts[st], st.Short())
	}
	return out
}
