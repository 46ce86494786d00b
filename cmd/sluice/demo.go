package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/sluice-ci/sluice/coordinator"
	"github.com/sluice-ci/sluice/internal/auth"
	"github.com/sluice-ci/sluice/internal/evidence"
	sluicev1 "github.com/sluice-ci/sluice/proto/sluice/v1"
)

func newDemoCmd(a *app) *cobra.Command {
	var (
		example      string
		dataFlag     string
		keepData     bool
		keepRunning  bool
		badCanary    bool
		badMigration bool
	)
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run the example pipeline end to end on a throwaway fleet",
		Long: `Start a fleet as 'sluice dev' does, on a temporary data directory and free ports, run the
example pipeline (examples/pipeline.yaml, with examples/ as its source tree and ref main) to
the end while printing its progress as 'sluice run' does, then print a summary of every
stage and of the rollout, and stop the fleet.

The example gates a payments service from the first commit check to production: lint ||
typecheck, then the unit tests on two shards || the governance engine over the tree (its SARIF
an artifact), then backup verification of the service's production database (a throwaway
PostgreSQL the demo starts from the machine's binaries, with the example's migrations and seed
data: checked live against the committed baseline, then dumped, restored into another
throwaway cluster and compared), API contract tests and browser journeys on a real Chromium
against staging, a k6 load test, and on main a progressive rollout. The demo runs the service on loopback: a staging instance of the new version (green)
for the staging gates, and production: blue (stable) and green (canary) behind the builtin
weighted router, with a client sending about 250 requests a second through it. The
coordinator shifts 10% -> 50% -> 100% of the traffic to green, analysing each step against
blue (error rate at most 1.5x blue's, empty responses under 1%), and promotes it.

--bad-canary ships a green that fails 5% of its requests in production (it passes staging):
the first analysis at 10% catches it and the coordinator rolls the traffic back to blue.

--bad-migration adds a migration that drops a column of the payments table the service
still reads (to a copy of the example): the governance stage names the table and column, the
run fails before anything reaches production, and the demo exits 0.

The fleet runs with authentication, as a real one does: 'sluice auth init' writes its
credentials into the data directory, the coordinator and each kind's worker connect with
their own, and the run is submitted as submitter:default. The promotion (or rollback) leaves
signed evidence, which the demo verifies and writes to DATA/evidence/.

The load stage needs k6 (make bin/k6), the e2e stage Chromium (Debian: chromium) and the
backup-verify stage PostgreSQL's server binaries (Debian: postgresql); 'make demo' provides
them. Run it from the repository root, or point --example at the directory
holding the example's pipeline.yaml. Exit codes: 0 the outcome was the expected one
(promoted; rolled back with --bad-canary; caught at governance with --bad-migration), 1 it
was not, 2 the example is missing or invalid.`,
		Example: `  sluice demo
  # Watch an automatic rollback:
  sluice demo --bad-canary
  # Watch a destructive migration stopped at the governance gate:
  sluice demo --bad-migration
  # Keep the fleet up afterwards to look around with the dashboard and 'sluice runs list':
  sluice demo --keep-running`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			file := filepath.Join(example, "pipeline.yaml")
			if _, err := os.Stat(file); err != nil {
				return usageErrorf(cmd, "example pipeline %s: %w; run `sluice demo` from the repository root or pass --example DIR", file, err)
			}
			if badCanary && badMigration {
				return usageErrorf(cmd, "--bad-canary and --bad-migration show two different failures: pick one")
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
			// Production's database is what it is before the change under test: the
			// migrations of the example as committed.
			db, err := startDemoDatabase(ctx, example)
			if err != nil {
				return err
			}
			defer func() {
				if err := db.close(); err != nil {
					a.log.Warn("demo database", "err", err)
				}
			}()
			source := example
			if badMigration {
				if source, err = withBadMigration(example); err != nil {
					return err
				}
				defer os.RemoveAll(source)
			}
			dataDir := dataFlag
			if dataDir == "" {
				if dataDir, err = os.MkdirTemp("", "sluice-demo-"); err != nil {
					return fmt.Errorf("demo data dir: %w", err)
				}
			} else if entries, err := os.ReadDir(dataDir); err == nil && len(entries) > 0 {
				return usageErrorf(cmd, "--data %s is not empty: the demo starts a fleet from nothing", dataDir)
			}
			if !keepData {
				defer os.RemoveAll(dataDir)
			}

			// The demo fleet runs as a real one does: every part and client with its own
			// credentials, the server enforcing what each role may do.
			authDir := filepath.Join(dataDir, "auth")
			if _, err := auth.Init(authDir, auth.InitOptions{Names: a.names()}); err != nil {
				return fmt.Errorf("demo credentials: %w", err)
			}
			f, err := a.startFleet(ctx, fleetOptions{
				dataDir:     dataDir,
				natsListen:  "127.0.0.1:-1",
				httpAddr:    "127.0.0.1:0",
				authDir:     authDir,
				kinds:       sluicev1.AllKinds(),
				pool:        "default",
				concurrency: 4,
				secrets:     db.secrets(p.GetName()),
			})
			if err != nil {
				return err
			}
			defer func() {
				if err := f.shutdown(); err != nil {
					a.log.Warn("demo fleet shutdown", "err", err)
				}
			}()
			layout := auth.Layout{Dir: authDir}
			fmt.Fprintf(a.stdout, "fleet up: NATS %s, dashboard %s, data %s\n", f.natsURL, f.httpURL, dataDir)
			fmt.Fprintf(a.stdout, "auth: every part has its own credentials in %s; this run is submitted as %s\n", authDir, auth.Principal(auth.RoleSubmitter, auth.DefaultUser))

			a.natsURL = f.natsURL
			c, err := a.connectAs(ctx, "sluice demo", layout.Creds(auth.RoleSubmitter, auth.DefaultUser))
			if err != nil {
				return err
			}
			defer c.Close()
			fmt.Fprintf(a.stdout, "staging: green at %s; production: blue (stable) and green (canary%s) behind the router at %s\n",
				env.stagingURL, map[bool]string{true: ", failing 5%", false: ""}[badCanary], env.routerAdmin)
			fmt.Fprintf(a.stdout, "production database: %s on a throwaway PostgreSQL, granted to the workers as %s\n",
				demoDatabaseName, demoDSNSecret)
			if badMigration {
				fmt.Fprintf(a.stdout, "change under test: %s, which drops a column the service reads\n", badMigrationFile)
			}
			commit, _ := gitCommit(ctx, example)
			run, digest, err := submitRun(ctx, c, p, source, defaultRef, commit, vars)
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "run %s: %s, %d stages, ref %s, source %s\n", run.GetId(), p.GetName(), len(p.GetStages()), defaultRef, shortDigest(digest))
			status, err := followRun(ctx, c, run, a.stdout)
			if err == nil {
				status, err = finalStatus(ctx, c, run.GetId())
			}
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
			writeReports(a.stdout, final)
			writeRollouts(a.stdout, final)
			if err := a.demoEvidence(ctx, c, final, layout, filepath.Join(dataDir, "evidence")); err != nil {
				return err
			}
			fmt.Fprintln(a.stdout, env.summary())
			fmt.Fprintln(a.stdout)
			fmt.Fprintf(a.stdout, "demo %s: %s in %s\n", status.Short(), stageCounts(final), span(final.GetCreatedAt(), final.GetFinishedAt()))
			if keepRunning {
				fmt.Fprintf(a.stdout, "fleet still running: export SLUICE_NATS=%s; dashboard %s; Ctrl-C stops it\n", f.natsURL, f.httpURL)
				if err := f.wait(ctx); err != nil {
					return err
				}
			}
			if badMigration {
				f := destructiveMigration(final)
				if f == nil {
					return withCode(exitFailed, errors.New("the destructive migration was not caught; see the governance stage above"))
				}
				fmt.Fprintf(a.stdout, "the destructive migration was caught at %s:%d (%s), as expected: nothing reached production\n",
					f.GetFile(), f.GetLine(), f.GetMessage())
				return nil
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
	f.StringVar(&dataFlag, "data", "", "empty directory for the fleet's store, credentials and evidence (default: a temporary one)")
	f.BoolVar(&keepData, "keep-data", false, "keep the data directory (credentials, evidence) after the demo")
	f.BoolVar(&keepRunning, "keep-running", false, "keep the fleet running after the run, until Ctrl-C")
	f.BoolVar(&badCanary, "bad-canary", false, "ship a green that fails 5% of requests and watch the automatic rollback")
	f.BoolVar(&badMigration, "bad-migration", false, "add a migration that drops a column and watch the governance gate stop it")
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

// writeReports lists what the engines stored of the run, by stage: the reports a user
// would open next (SARIF, JUnit, backup verification).
func writeReports(w io.Writer, run *sluicev1.RunState) {
	wrote := false
	for _, s := range run.GetStages() {
		var names []string
		for _, ref := range s.GetArtifacts() {
			if ref.GetName() != coordinator.EvidenceArtifact {
				names = append(names, ref.GetName())
			}
		}
		if len(names) == 0 {
			continue
		}
		if !wrote {
			fmt.Fprintln(w, "reports (sluice artifacts get RUN STAGE NAME, with --keep-running):")
			wrote = true
		}
		fmt.Fprintf(w, "  %-14s %s\n", s.GetName(), strings.Join(names, ", "))
	}
	if wrote {
		fmt.Fprintln(w)
	}
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

// demoEvidence fetches the signed evidence of each rollout of the run, writes it to dir and
// verifies it with the fleet's key, as an auditor would with 'sluice evidence verify'.
func (a *app) demoEvidence(ctx context.Context, c *conn, run *sluicev1.RunState, l auth.Layout, dir string) error {
	keyData, err := os.ReadFile(l.EvidencePub())
	if err != nil {
		return err
	}
	pub, err := auth.ParsePublicKey(keyData)
	if err != nil {
		return err
	}
	for _, s := range run.GetStages() {
		for _, ref := range s.GetArtifacts() {
			if ref.GetName() != coordinator.EvidenceArtifact {
				continue
			}
			data, err := readArtifact(ctx, c, ref)
			if err != nil {
				return fmt.Errorf("evidence of %s: %w", s.GetName(), err)
			}
			st, err := evidence.Verify(data, pub)
			if err != nil {
				return withCode(exitFailed, fmt.Errorf("evidence of %s: %w", s.GetName(), err))
			}
			file := filepath.Join(dir, s.GetName()+".intoto.json")
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return err
			}
			if err := os.WriteFile(file, data, 0o644); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "evidence: %s of %s signed and verified (%d stages, %d verdicts): %s\n  check it: sluice evidence verify %s --key %s (with --keep-data)\n",
				st.Predicate.Decision, s.GetName(), len(st.Predicate.Stages), len(st.Predicate.Verdicts), file, file, l.EvidencePub())
		}
	}
	return nil
}
