package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluice-ci/sluice/internal/junit"
	"github.com/sluice-ci/sluice/testreport"
)

func newTestReportCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "testreport",
		Short: "Test reports and timing-balanced shards, locally",
		Long: `Run the test stage's report engine on this machine, without a fleet (no NATS needed):
turn 'go test -json' output into the JUnit report the stage stores, with the same summary,
and split test units over shards by their recorded durations as the stage does.

The two meet in a timings file, a JSON object of each unit's seconds: 'junit --timings'
writes one from a run, 'split --timings' balances the next run's shards with it.`,
		Example: `  go test -json ./... | sluice testreport junit --out junit.xml --timings timings.json
  sluice testreport split --shards 4 --timings timings.json $(go list ./...)`,
		Args: noArgs,
		RunE: showHelp,
	}
	cmd.AddCommand(newTestReportJUnitCmd(a), newTestReportSplitCmd(a))
	return cmd
}

func newTestReportJUnitCmd(a *app) *cobra.Command {
	var out, name, timings string
	cmd := &cobra.Command{
		Use:   "junit [FILE]",
		Short: "Convert go test -json output to a JUnit XML report",
		Long: `Read 'go test -json' output from FILE (or stdin when FILE is - or absent), write it as a
JUnit XML report to --out, and print a summary: the packages, the tests, and each failed
test with the end of its output.

One suite per package, one case per test; a failed subtest is named rather than its
parent. A package that failed without a failing test (it did not build, TestMain or init
panicked) gets a "` + testreport.PackageCase + `" case with the package's output, and a test still running
when the output ended (the binary crashed or timed out) counts as failed. Lines that are
not test2json events (go: downloading ..., other tools' output) are skipped.

--timings FILE also writes each finished package's test time, the input of
'sluice testreport split --timings'.

Exit codes: 0 every test passed, 1 a test or a package failed, 2 bad input (an unreadable
FILE, or no go test -json event in it: the error names its first line).`,
		Example: `  go test -json ./... | sluice testreport junit
  go test -json ./... > test.jsonl; sluice testreport junit test.jsonl --out reports/junit.xml --name unit
  go test -json ./... | sluice testreport junit --timings timings.json`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 1 {
				return usageErrorf(cmd, "%s takes at most one FILE, got %d: unexpected %q", cmd.CommandPath(), len(args), args[1])
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			src, in := "stdin", cmd.InOrStdin()
			if len(args) == 1 && args[0] != "-" {
				f, err := os.Open(args[0])
				if err != nil {
					return withCode(exitUsage, err)
				}
				defer f.Close()
				src, in = args[0], f
			}
			pkgs, err := testreport.Parse(in)
			if err != nil {
				return withCode(exitUsage, fmt.Errorf("%s: %w", src, err))
			}
			suites := testreport.JUnitSuites(pkgs)
			doc := &junit.Suites{Name: name, Suites: suites}
			if err := writeReport(out, func(f *os.File) error { return junit.Write(f, doc) }); err != nil {
				return err
			}
			if timings != "" {
				if err := writeReport(timings, func(f *os.File) error {
					return testreport.WriteTimings(f, testreport.Timings(pkgs))
				}); err != nil {
					return err
				}
			}
			failures := testreport.Failures(suites)
			printFailures(a.stdout, failures)
			summary := testreport.Summary(suites, len(pkgs))
			fmt.Fprintln(a.stdout, summary)
			a.note("wrote %s (%d tests)", out, doc.Tests)
			if len(failures) > 0 {
				return &exitError{code: exitFailed, err: errors.New(summary), quiet: true}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&out, "out", "junit.xml", "write the JUnit XML report to `FILE`")
	f.StringVar(&name, "name", "go test", "the report's name (its <testsuites name=...>)")
	f.StringVar(&timings, "timings", "", "also write each finished package's test time to the timings `FILE`")
	return cmd
}

// printFailures prints each failed test and the end of its output, as go test would.
func printFailures(w io.Writer, failures []testreport.Failure) {
	for _, f := range failures {
		fmt.Fprintf(w, "FAIL %s %s\n", f.Suite, f.Name)
		for l := range strings.Lines(f.Tail(10, 4096)) {
			fmt.Fprintf(w, "    %s\n", strings.TrimSuffix(l, "\n"))
		}
	}
}

func newTestReportSplitCmd(a *app) *cobra.Command {
	var (
		shards  int
		timings string
	)
	cmd := &cobra.Command{
		Use:   "split --shards N [--timings FILE] UNIT...",
		Short: "Split test units over shards, balanced by their durations",
		Long: `Assign each UNIT (a Go package, a test file: whatever one test command runs) to one of N
shards, as the test stage splits SLUICE_TEST_UNITS, and print one line per shard, shard 0
first: its units, sorted and space-separated (an empty line for a shard with none).

Units go longest first to the shard with the least work so far, by their seconds in the
--timings file ({"UNIT": SECONDS, ...}, as 'sluice testreport junit --timings' writes it).
A unit the file does not have is estimated at the mean of those it has (1 s when it has
none), so without --timings the units are dealt out evenly by name. The same input always
gives the same split, so every CI job may compute it and take its own line.

Exit codes: 0 split, 2 bad input (--shards below 1, no UNIT, an unreadable or invalid
timings file: the error names its line).`,
		Example: `  sluice testreport split --shards 3 ./api ./store ./web ./worker
  sluice testreport split --shards 4 --timings timings.json $(go list ./...)

  # In CI job I (0-based) of 4, test this job's share:
  go test $(sluice testreport split --shards 4 --timings timings.json $(go list ./...) | sed -n "$((I+1))p")`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usageErrorf(cmd, "%s needs at least one UNIT", cmd.CommandPath())
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if shards < 1 {
				return usageErrorf(cmd, "--shards %d: want 1 or more", shards)
			}
			var known map[string]time.Duration
			if timings != "" {
				f, err := os.Open(timings)
				if err != nil {
					return withCode(exitUsage, fmt.Errorf("--timings: %w", err))
				}
				defer f.Close()
				if known, err = testreport.ReadTimings(f); err != nil {
					return withCode(exitUsage, fmt.Errorf("%s: %w", timings, err))
				}
			}
			for _, s := range testreport.Split(testreport.Units(args, known), shards) {
				fmt.Fprintln(a.stdout, strings.Join(s, " "))
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.IntVar(&shards, "shards", 0, "split into `N` shards (required)")
	f.StringVar(&timings, "timings", "", "the units' durations, a JSON `FILE` of {\"UNIT\": SECONDS}")
	return cmd
}
