package main

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluice-ci/sluice/loadtest"
)

func newLoadCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "load",
		Short: "k6 load tests, locally",
		Long: `Run the load stage's engine on this machine, without a fleet: k6 ` + loadtest.K6Version + ` as a
subprocess, found at $` + loadtest.K6Env + `, then on PATH, then at bin/k6 (build it with 'make bin/k6').`,
		Example: `  sluice load run examples/app/loadtest/api.js --target http://127.0.0.1:18081 --vus 10 --duration 60s`,
		Args:    noArgs,
		RunE:    showHelp,
	}
	cmd.AddCommand(newLoadRunCmd(a))
	return cmd
}

func newLoadRunCmd(a *app) *cobra.Command {
	var (
		o          loadtest.Options
		stages     []string
		thresholds []string
		envs       []string
		summary    string
	)
	cmd := &cobra.Command{
		Use:   "run SCRIPT [--target URL]",
		Short: "Run a k6 script and check its thresholds",
		Long: `Run a k6 script as the load stage does: --target reaches the script as __ENV.TARGET_URL
(and must accept connections before k6 starts), --vus/--duration or --stage override the
script's load profile, --threshold adds to the script's own thresholds. k6's progress goes
to stderr; the verdict of every threshold and the headline numbers go to stdout.

Exit codes: 0 every threshold held, 1 a threshold was crossed or k6 failed (the script does
not compile, the target refuses connections, k6 is missing), 2 bad input.`,
		Example: `  sluice load run examples/app/loadtest/api.js --target http://127.0.0.1:18081 --vus 10 --duration 60s
  sluice load run api.js --target "$STAGING_URL" --threshold 'http_req_duration=p(95)<500' --summary summary.json`,
		Args: exactArgs("SCRIPT"),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Script = args[0]
			if _, err := os.Stat(o.Script); err != nil {
				return usageErrorf(cmd, "script %s: %w", o.Script, err)
			}
			for _, s := range stages {
				d, n, ok := strings.Cut(s, ":")
				dur, derr := time.ParseDuration(d)
				target, terr := strconv.Atoi(n)
				if !ok || derr != nil || terr != nil {
					return usageErrorf(cmd, "--stage %q: want DURATION:VUS, e.g. 30s:10", s)
				}
				o.Stages = append(o.Stages, loadtest.Stage{Duration: dur, Target: target})
			}
			for _, t := range thresholds {
				metric, expr, ok := strings.Cut(t, "=")
				if !ok || metric == "" || expr == "" {
					return usageErrorf(cmd, "--threshold %q: want METRIC=EXPRESSION, e.g. 'http_req_duration=p(95)<500'", t)
				}
				if o.Thresholds == nil {
					o.Thresholds = map[string][]string{}
				}
				o.Thresholds[metric] = append(o.Thresholds[metric], expr)
			}
			for _, e := range envs {
				k, v, ok := strings.Cut(e, "=")
				if !ok || k == "" {
					return usageErrorf(cmd, "--env %q: want KEY=VALUE", e)
				}
				if o.Env == nil {
					o.Env = map[string]string{}
				}
				o.Env[k] = v
			}
			o.Output = a.stderr
			res, err := loadtest.Run(cmd.Context(), o)
			if errors.Is(err, loadtest.ErrBadOptions) {
				return usageError(cmd, err)
			}
			if res != nil && res.Summary != nil {
				printLoadSummary(a, res.Summary)
			}
			if summary != "" && res != nil && len(res.SummaryJSON) > 0 {
				if werr := os.WriteFile(summary, res.SummaryJSON, 0o644); werr != nil {
					return fmt.Errorf("write the summary: %w", werr)
				}
			}
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Target, "target", "", "base URL of the service, passed to the script as __ENV.TARGET_URL")
	f.IntVar(&o.VUs, "vus", 0, "virtual users (default: the script's)")
	f.DurationVar(&o.Duration, "duration", 0, "test duration (default: the script's)")
	f.StringArrayVar(&stages, "stage", nil, "a ramp stage `DURATION:VUS` instead of --duration (repeatable)")
	f.StringArrayVar(&thresholds, "threshold", nil, "add the threshold `METRIC=EXPRESSION` (repeatable)")
	f.StringArrayVar(&envs, "env", nil, "pass `KEY=VALUE` to the script as __ENV.KEY (repeatable)")
	f.StringVar(&summary, "summary", "", "write the k6 summary JSON (handleSummary data) to `FILE`")
	f.StringVar(&o.K6, "k6", "", "the k6 binary (default: $"+loadtest.K6Env+", then PATH, then bin/k6)")
	return cmd
}

func printLoadSummary(a *app, s *loadtest.Summary) {
	fmt.Fprintf(a.stdout, "requests %.0f (%.1f/s), p50 %.1f ms, p95 %.1f ms, p99 %.1f ms, failed %.2f%%, iterations %.0f\n",
		s.Requests, s.RequestRate, s.DurationP50, s.DurationP95, s.DurationP99, 100*s.ErrorRate, s.Iterations)
	for _, t := range s.Thresholds {
		verdict := "ok  "
		if !t.OK {
			verdict = "FAIL"
		}
		fmt.Fprintf(a.stdout, "%s %s\n", verdict, t)
	}
}
