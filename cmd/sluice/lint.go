package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

func newLintCmd(a *app) *cobra.Command {
	var sets []string
	cmd := &cobra.Command{
		Use:   "lint PIPELINE.yaml",
		Short: "Validate a pipeline file without running it",
		Long: `Parse and validate a pipeline file, as 'sluice run' does before it submits anything.

Parsing is strict: an unknown field, a cycle in needs, a need of an unknown stage, an
unknown kind, a bad duration, a duplicate stage or an out-of-range value is an error. Each
problem prints on its own line as FILE:LINE:COL: FIELD: MESSAGE, the form editors and CI
annotations understand. ${VAR} references are substituted from --set, then the pipeline's
env, then the environment; a reference to a variable that is set nowhere is an error.

Exit codes: 0 valid ("ok: NAME, N stages"), 2 invalid.`,
		Example: `  sluice lint examples/hello/pipeline.yaml
  sluice lint ci/pipeline.yaml --set STAGING_URL=http://127.0.0.1:18081`,
		Args: exactArgs("PIPELINE.yaml"),
		RunE: func(cmd *cobra.Command, args []string) error {
			vars, err := parseSets(cmd, sets)
			if err != nil {
				return err
			}
			p, err := parsePipeline(args[0], vars, a.stderr)
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "ok: %s, %d stages\n", p.GetName(), len(p.GetStages()))
			return nil
		},
	}
	cmd.Flags().StringArrayVar(&sets, "set", nil, "set the pipeline variable `KEY=VALUE` (repeatable)")
	return cmd
}
