package main

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluice-ci/sluice/contract"
)

func newContractCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "contract",
		Short: "HTTP contract tests, locally",
		Long: `Run the contract stage's engine on this machine, without a fleet.

A contract file is YAML: a named sequence of requests, each with what the response must
look like (status, headers, a JSON Schema 2020-12 for the body, matchers on JSON paths) and
captures that feed values of a response into later requests. See examples/app/contracts.`,
		Example: `  sluice contract check examples/app/contracts/*.yaml --target http://127.0.0.1:18081`,
		Args:    noArgs,
		RunE:    showHelp,
	}
	cmd.AddCommand(newContractCheckCmd(a))
	return cmd
}

func newContractCheckCmd(a *app) *cobra.Command {
	var (
		target  string
		junit   string
		timeout time.Duration
		sets    []string
	)
	cmd := &cobra.Command{
		Use:   "check FILE... --target URL",
		Short: "Check contract files against a running service",
		Long: `Run each contract of the files against the service at --target and print, for every
failed step, what was expected beside what came back, then the response body.

A contract stops at its first failed step (later steps build on it) and the rest are
skipped. A timeout or a refused connection fails the step with its cause. ${VAR} references
are resolved from captures, then --set, then the environment, then the contract's vars.

Exit codes: 0 every contract passed, 1 a contract failed, 2 bad input (flags, an invalid
contract file, a file pattern that matches nothing).`,
		Example: `  sluice contract check examples/app/contracts/*.yaml --target http://127.0.0.1:18081
  sluice contract check contracts/payments.yaml --target "$STAGING_URL" --junit contract-junit.xml`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usageErrorf(cmd, "%s needs at least one contract FILE", cmd.CommandPath())
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if target == "" {
				return usageErrorf(cmd, "--target is required: the base URL of the service, e.g. http://127.0.0.1:18081")
			}
			vars, err := parseSets(cmd, sets)
			if err != nil {
				return err
			}
			contracts, err := contract.LoadFiles("", args)
			if err != nil {
				return withCode(exitUsage, err)
			}
			r := &contract.Runner{Target: target, Timeout: timeout, Lookup: func(k string) (string, bool) {
				if v, ok := vars[k]; ok {
					return v, true
				}
				return os.LookupEnv(k)
			}}
			rep := r.Run(cmd.Context(), contracts)
			if err := rep.WriteText(a.stdout); err != nil {
				return fmt.Errorf("write the report: %w", err)
			}
			if junit != "" {
				if err := writeReport(junit, func(f *os.File) error { return rep.WriteJUnit(f) }); err != nil {
					return err
				}
			}
			if !rep.Passed() {
				return &exitError{code: exitFailed, err: errors.New(rep.Summary()), quiet: true}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&target, "target", "", "base URL of the service under test (required)")
	f.StringVar(&junit, "junit", "", "also write a JUnit XML report to `FILE`")
	f.DurationVar(&timeout, "timeout", contract.DefaultTimeout, "per-request timeout of contracts that set none")
	f.StringArrayVar(&sets, "set", nil, "set the contract variable `KEY=VALUE` (repeatable)")
	return cmd
}

// writeReport writes a report to path, creating or truncating it.
func writeReport(path string, write func(w *os.File) error) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := write(f); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
