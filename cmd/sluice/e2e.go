package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluice-ci/sluice/e2e"
)

func newE2ECmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "e2e",
		Short: "Browser journeys on a real Chromium, locally",
		Long: `Run browser journeys (YAML files of steps: goto, click, fill, expect_text, ...) on the
system Chromium, the same engine the e2e stage kind runs on the fleet. See e2e/README.md
for the journey format.`,
		Example: `  sluice e2e run examples/app/journeys/*.yaml --base-url http://127.0.0.1:18081`,
		Args:    noArgs,
		RunE:    showHelp,
	}
	cmd.AddCommand(newE2ERunCmd(a))
	return cmd
}

func newE2ERunCmd(a *app) *cobra.Command {
	var (
		baseURL, chromium, out string
		sets                   []string
		timeout                time.Duration
	)
	cmd := &cobra.Command{
		Use:   "run JOURNEYS...",
		Short: "Run journey files against a base URL",
		Long: `Run journey files, one after the other, each in a fresh incognito context of one headless
Chromium. Relative URLs of goto steps resolve against --base-url (a journey's own base_url
wins); ${VAR} references in journeys are substituted from --set, then BASE_URL (the
--base-url value), then the environment.

Each journey prints PASS or FAIL with its time; a failure names the file, the line and the
step, and what the page showed instead. --out DIR receives junit.xml and the screenshots:
one of the page after every failed step, and those that screenshot steps ask for.

The browser is --chromium, else $SLUICE_CHROMIUM, else /usr/bin/chromium (Debian package
"chromium"). As root it runs without its sandbox, which Chromium requires.

Exit codes: 0 every journey passed, 1 a journey failed or the browser is missing,
2 bad input (flags, a journey file that does not parse).`,
		Example: `  sluice e2e run examples/app/journeys/*.yaml --base-url http://127.0.0.1:18081
  sluice e2e run login.yaml --base-url http://localhost:3000 --set USER=alice --out /tmp/e2e`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usageErrorf(cmd, "%s needs at least one journey file", cmd.CommandPath())
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			vars, err := parseSets(cmd, sets)
			if err != nil {
				return err
			}
			if _, ok := vars["BASE_URL"]; !ok && baseURL != "" {
				vars["BASE_URL"] = baseURL
			}
			files, err := journeyFiles(args)
			if err != nil {
				return usageError(cmd, err)
			}
			journeys, err := e2e.LoadFiles(files, e2e.MapLookup(vars, os.LookupEnv))
			if err != nil {
				fmt.Fprintln(a.stderr, err)
				return &exitError{code: exitUsage, err: errors.New("journey files do not parse"), quiet: true}
			}
			eng, err := e2e.New(e2e.Config{Chromium: chromium, StepTimeout: timeout, Logger: a.log})
			if err != nil {
				return err
			}
			defer eng.Close()
			return runJourneys(cmd, a, eng, journeys, baseURL, out)
		},
	}
	f := cmd.Flags()
	f.StringVar(&baseURL, "base-url", "", "`URL` that relative goto URLs resolve against (also ${BASE_URL})")
	f.StringVar(&chromium, "chromium", "", "Chromium binary `PATH` (default $SLUICE_CHROMIUM, then /usr/bin/chromium)")
	f.StringArrayVar(&sets, "set", nil, "set the journey variable `KEY=VALUE` (repeatable)")
	f.StringVar(&out, "out", "e2e-results", "`DIR` for junit.xml and screenshots; empty: write nothing")
	f.DurationVar(&timeout, "timeout", e2e.DefaultStepTimeout, "default timeout of a step (journeys and steps may set their own)")
	return cmd
}

// journeyFiles expands arguments that are globs the shell did not expand.
func journeyFiles(args []string) ([]string, error) {
	var files []string
	for _, a := range args {
		if !strings.ContainsAny(a, "*?[") {
			files = append(files, a)
			continue
		}
		m, err := filepath.Glob(a)
		if err != nil {
			return nil, fmt.Errorf("journey glob %q: %w", a, err)
		}
		if len(m) == 0 {
			return nil, fmt.Errorf("journey glob %q matched no file", a)
		}
		files = append(files, m...)
	}
	return files, nil
}

func runJourneys(cmd *cobra.Command, a *app, eng *e2e.Engine, journeys []*e2e.Journey, baseURL, out string) error {
	ctx := cmd.Context()
	start := time.Now()
	if err := eng.Start(ctx); err != nil {
		return err
	}
	a.note("browser %s started in %s", eng.Chromium(), eng.Stats().LastStart.Round(time.Millisecond))
	var results []*e2e.Result
	failed := 0
	for _, j := range journeys {
		if ctx.Err() != nil {
			break
		}
		r := eng.Run(ctx, j, e2e.RunOptions{BaseURL: baseURL})
		results = append(results, r)
		mark := "PASS"
		if r.Status != e2e.StatusPassed {
			mark = "FAIL"
			failed++
		}
		fmt.Fprintf(a.stdout, "%s %s (%s) %s\n", mark, r.Journey, r.File, r.Duration.Round(time.Millisecond))
		if r.Message != "" {
			fmt.Fprintf(a.stdout, "     %s\n", r.Message)
		}
		for _, c := range r.ConsoleErrors() {
			fmt.Fprintf(a.stdout, "     console error: %s\n", c)
		}
	}
	if out != "" {
		if err := writeE2EResults(out, results); err != nil {
			return err
		}
		a.note("results in %s", out)
	}
	fmt.Fprintf(a.stdout, "%d journeys: %d passed, %d failed in %s\n", len(results), len(results)-failed, failed, time.Since(start).Round(time.Millisecond))
	if ctx.Err() != nil {
		return withCode(exitInterrupted, fmt.Errorf("interrupted after %d of %d journeys", len(results), len(journeys)))
	}
	if failed > 0 {
		return &exitError{code: exitFailed, err: fmt.Errorf("%d journeys failed", failed), quiet: true}
	}
	return nil
}

// writeE2EResults writes junit.xml and each journey's screenshots under dir.
func writeE2EResults(dir string, results []*e2e.Result) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("results directory: %w", err)
	}
	f, err := os.Create(filepath.Join(dir, "junit.xml"))
	if err != nil {
		return fmt.Errorf("write junit.xml: %w", err)
	}
	if err := e2e.WriteJUnit(f, "e2e", results); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write junit.xml: %w", err)
	}
	for _, r := range results {
		sub := filepath.Join(dir, "screenshots", strings.TrimSuffix(filepath.Base(r.File), filepath.Ext(r.File)))
		for _, s := range r.Screenshots {
			if err := os.MkdirAll(sub, 0o755); err != nil {
				return fmt.Errorf("screenshots directory: %w", err)
			}
			if err := os.WriteFile(filepath.Join(sub, s.Name), s.PNG, 0o644); err != nil {
				return fmt.Errorf("write screenshot: %w", err)
			}
		}
	}
	return nil
}
