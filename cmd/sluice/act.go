package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	sluicev1 "github.com/sluice-ci/sluice/proto/sluice/v1"
)

func newCancelCmd(a *app) *cobra.Command {
	var reason string
	cmd := &cobra.Command{
		Use:   "cancel ID",
		Short: "Cancel a run",
		Long: `Cancel a run: its queued tasks are purged, its running steps are killed (their whole
process group), and the run ends cancelled. Cancelling a cancelled run again is harmless;
cancelling one that already passed or failed is a conflict (exit 1). The run records the
principal of your credentials (--creds) as the one who cancelled it.`,
		Example: `  sluice cancel 01JD3K5W7N8Q2R4T6V8X0Z2B4D
  sluice cancel 01JD3K5W7N8Q2R4T6V8X0Z2B4D --reason "superseded by a newer push"`,
		Args:              exactArgs("ID"),
		ValidArgsFunction: completeRun(a),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.act(cmd, "cancel", args[0], func(c *conn, ctx context.Context) (*sluicev1.RunState, error) {
				return c.api.Cancel(ctx, args[0], reason)
			})
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "cancelled from the CLI", "why, recorded in the run and its events")
	return cmd
}

func newApproveCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "approve ID STAGE",
		Short: "Approve a stage that waits for approval",
		Long: `Release a stage declared with 'approval: required' that is waiting for a person (status
waiting_approval), or continue its rollout at a step that waits for approval or froze: it is
dispatched at once. A stage that does not wait is a conflict (exit 1).

The approver recorded in the run and in the stage.approved event is the principal of your
credentials (--creds), never a name you type: on a fleet with authentication the server lets
each user call the run API only under its own name. A stage with 'approval: {by: [...]}'
accepts only the principals, roles or policy groups it names; anyone else is refused.`,
		Example:           `  sluice approve 01JD3K5W7N8Q2R4T6V8X0Z2B4D production --creds ~/.sluice/approver-alice.creds`,
		Args:              exactArgs("ID", "STAGE"),
		ValidArgsFunction: completeRunThenStage(a),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.act(cmd, "approve", args[0], func(c *conn, ctx context.Context) (*sluicev1.RunState, error) {
				return c.api.Approve(ctx, args[0], args[1])
			})
		},
	}
	return cmd
}

func newRollbackCmd(a *app) *cobra.Command {
	var reason string
	cmd := &cobra.Command{
		Use:   "rollback ID",
		Short: "Roll back the rollout of a run",
		Long: `Roll back a run's rollout at once: the coordinator sets the canary's traffic weight to 0
(and tears the canary down when the pipeline says so), and the rollout stage fails with
your reason. The run records the principal of your credentials as the one who asked, and
the rollback leaves signed evidence (see 'sluice evidence verify').`,
		Example:           `  sluice rollback 01JD3K5W7N8Q2R4T6V8X0Z2B4D --reason "checkout errors in the canary"`,
		Args:              exactArgs("ID"),
		ValidArgsFunction: completeRun(a),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.act(cmd, "rollback", args[0], func(c *conn, ctx context.Context) (*sluicev1.RunState, error) {
				return c.api.Rollback(ctx, args[0], reason)
			})
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "rolled back from the CLI", "why, recorded in the run and its events")
	return cmd
}

// act connects, calls one mutating verb of the run API and prints the run's state after it.
func (a *app) act(cmd *cobra.Command, verb, id string, call func(*conn, context.Context) (*sluicev1.RunState, error)) error {
	c, err := a.connect(cmd.Context(), "sluice "+verb)
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := c.apiCtx(cmd.Context())
	defer cancel()
	run, err := call(c, ctx)
	if err = c.explain(ctx, err); err != nil {
		return fmt.Errorf("%s: %w", verb, runError(id, err))
	}
	fmt.Fprintf(a.stdout, "%s: run %s is %s (as %s)\n", verb, run.GetId(), run.GetStatus().Short(), c.api.Identity().Principal())
	return nil
}
