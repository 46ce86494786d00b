package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	sluicev1 "github.com/sluice-ci/sluice/proto/sluice/v1"
)

func newDemoCmd(a *app) *cobra.Command {
	var (
		example     string
		keepData    bool
		keepRunning bool
		badCanary   bool
	)
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run the example pipeline end to end on a throwaway fleet",
		Long: `Start a fleet as 'sluice dev' does, on a temporary data directory and free ports, run the
example pipeline (examples/pipeline.yaml, with examples/ as its source tree and ref main) to
the end while printing its progress as 'sluice run' does, then print a summary of every
stage and of the rollout, and stop the fleet.

The example gates a payments service from the first commit check to production: lint ||
typecheck, then test || governance, then backup verification, API contract tests and browser
journeys on a real Chromium against staging, a k6 load test, and on main a progressive
rollout. The demo runs the service on loopback: a staging instance of the new version (green)
for the staging gates, and production: blue (stable) and green (canary) behind the builtin
weighted router, with a client sending about 250 requests a second through it. The
coordinator shifts 10% -> 50% -> 100% of the traffic to green, analysing each step against
blue (error rate at most 1.5x blue's, empty responses under 1%), and promotes it.

--bad-canary ships a green that fails 5% of its requests in production (it passes staging):
the first analysis at 10% catches it and the coordinator rolls the traffic back to blue.

The load stage needs k6 (make bin/k6) and the e2e stage Chromium (Debian: chromium); 'make
demo' provides both. Run it from the repository root, or point --example at the directory
holding the example's pipeline.yaml. Exit codes: 0 the outcome was the expected one
(promoted; rolled back with --bad-canary), 1 it was not, 2 the example is missing or invalid.`,
		Example: `  sluice demo
  # Watch an automatic rollback:
  sluice demo --bad-canary
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
			env, err := startDemoEnv(ctx, badCanary, a.log)
			if err != nil {
				return err
			}
			defer env.close()
			vars := env.vars()
			p, err := parsePipeline(file, vars, a.stderr)
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
			fmt.Fprintf(a.stdout, "staging: green at %s; production: blue (stable) and green (canary%s) behind the router at %s\n",
				env.stagingURL, map[bool]string{true: ", failing 5%", false: ""}[badCanary], env.routerAdmin)
			run, digest, err := submitRun(ctx, c, p, example, defaultRef, vars)
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
			writeRollouts(a.stdout, final)
			fmt.Fprintln(a.stdout, env.summary())
			fmt.Fprintln(a.stdout)
			fmt.Fprintf(a.stdout, "demo %s: %s in %s\n", status.Short(), stageCounts(final), span(final.GetCreatedAt(), final.GetFinishedAt()))
			if keepRunning {
				fmt.Fprintf(a.stdout, "fleet still running: export SLUICE_NATS=%s; dashboard %s; Ctrl-C stops it\n", f.natsURL, f.httpURL)
				if err := f.wait(ctx); err != nil {
					return err
				}
			}
			if badCanary {
				if !rolledBack(final) {
					return withCode(exitFailed, errors.New("the bad canary was not rolled back; see the verdicts above"))
				}
				fmt.Fprintln(a.stdout, "the bad canary was caught and rolled back, as expected")
				return nil
			}
			if status != sluicev1.RunStatus_RUN_STATUS_PASSED {
				return withCode(exitFailed, errors.New("the example pipeline did not pass; see the failed stage's output above"))
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&example, "example", "examples", "directory of the example: its pipeline.yaml and source tree")
	f.BoolVar(&keepData, "keep-data", false, "keep the temporary data directory")
	f.BoolVar(&keepRunning, "keep-running", false, "keep the fleet running after the run, until Ctrl-C")
	f.BoolVar(&badCanary, "bad-canary", false, "ship a green that fails 5% of requests and watch the automatic rollback")
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

// writeRollouts prints each rollout of a run: its steps, weights and every verdict's numbers.
func writeRollouts(w io.Writer, run *sluicev1.RunState) {
	for i, s := range run.GetStages() {
		ro := s.GetRollout()
		if ro == nil {
			continue
		}
		steps := run.GetSpec().GetStages()[i].GetRollout().GetSteps()
		fmt.Fprintf(w, "rollout of %s: %s, canary at %d%%, %d of %d steps\n", s.GetName(), phaseShort(ro.GetPhase()), ro.GetWeight(), ro.GetStep()+1, len(steps))
		for _, v := range ro.GetVerdicts() {
			fmt.Fprintf(w, "  step %d at %d%%: %s after %d intervals\n", v.GetStep()+1, v.GetWeight(), verdictShort(v.GetVerdict().GetOutcome()), v.GetVerdict().GetIntervals())
			for _, m := range v.GetVerdict().GetMetrics() {
				fmt.Fprintf(w, "    %-20s %-22s canary %-10.4g baseline %-10.4g limit %-8.4g %s\n", m.GetName(), m.GetRule(), m.GetCanary(), m.GetBaseline(), m.GetLimit(), verdictShort(m.GetOutcome()))
			}
		}
		if r := ro.GetReason(); r != "" {
			fmt.Fprintf(w, "  reason: %s\n", r)
		}
	}
}

func phaseShort(p sluicev1.RolloutPhase) string {
	return strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(p.String(), "ROLLOUT_PHASE_"), "_", " "))
}

func verdictShort(o sluicev1.VerdictOutcome) string {
	return strings.ToLower(strings.TrimPrefix(o.String(), "VERDICT_OUTCOME_"))
}

// rolledBack reports whether the run's rollouts all ended rolled back.
func rolledBack(run *sluicev1.RunState) bool {
	found := false
	for _, s := range run.GetStages() {
		if ro := s.GetRollout(); ro != nil {
			found = true
			if ro.GetPhase() != sluicev1.RolloutPhase_ROLLOUT_PHASE_ROLLED_BACK {
				return false
			}
		}
	}
	return found
}
