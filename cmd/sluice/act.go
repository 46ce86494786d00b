package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/sluice-ci/sluice/coordinator/decide"
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

func newRolloutCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rollout",
		Short: "Act on a rollout in progress: promote, pause, resume, abort",
		Long: `Act on the rollout of a run's traffic-shift stage while it goes on. STAGE may be left out
when the run has one rollout in progress. Whoever may approve the stage (approval.by) may
act on its rollout; the run and its events record the principal of your credentials.

  promote  skip what the current step waits for: its pause, its analysis (cancelled), or a
           freeze; the next step begins now
  pause    hold the rollout before its next step: the current action finishes, no more
           traffic moves until resume; an unhealthy verdict still rolls it back
  resume   let a paused rollout go on
  abort    roll the canary back to 0% (as 'sluice rollback'), and the stage fails`,
		Example: `  sluice rollout pause 01JD3K5W7N8Q2R4T6V8X0Z2B4D
  sluice rollout resume 01JD3K5W7N8Q2R4T6V8X0Z2B4D production
  sluice rollout promote 01JD3K5W7N8Q2R4T6V8X0Z2B4D
  sluice rollout abort 01JD3K5W7N8Q2R4T6V8X0Z2B4D --reason "wrong build"`,
		Args: noArgs,
		RunE: showHelp,
	}
	help := map[string][2]string{
		decide.RolloutPromote: {"Skip the current pause or analysis", "Skip what the rollout's current step waits for (its pause, its analysis, which is cancelled, or\na freeze): the next step begins now."},
		decide.RolloutPause:   {"Hold the rollout before its next step", "Hold the rollout before its next step: the action in flight finishes, then no more traffic\nmoves until 'sluice rollout resume'. An unhealthy verdict still rolls it back."},
		decide.RolloutResume:  {"Let a paused rollout go on", "Let a rollout paused with 'sluice rollout pause' go on from where it waits."},
		decide.RolloutAbort:   {"Roll the canary back and fail the stage", "Roll the canary back to 0% (as 'sluice rollback' does, with signed evidence) and fail the\nstage, with your reason."},
	}
	for _, action := range decide.RolloutActions {
		var reason string
		sub := &cobra.Command{
			Use:               action + " ID [STAGE]",
			Short:             help[action][0],
			Long:              help[action][1] + "\n\nSTAGE may be left out when the run has one rollout in progress.",
			Example:           "  sluice rollout " + action + " 01JD3K5W7N8Q2R4T6V8X0Z2B4D",
			Args:              cobra.RangeArgs(1, 2),
			ValidArgsFunction: completeRunThenStage(a),
			RunE: func(cmd *cobra.Command, args []string) error {
				stage := ""
				if len(args) == 2 {
					stage = args[1]
				}
				return a.act(cmd, "rollout "+action, args[0], func(c *conn, ctx context.Context) (*sluicev1.RunState, error) {
					return c.api.Rollout(ctx, args[0], stage, action, reason)
				})
			},
		}
		sub.Flags().StringVar(&reason, "reason", "", "why, recorded in the run and its events")
		cmd.AddCommand(sub)
	}
	return cmd
}

func newRetryCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "retry ID STAGE",
		Short: "Run a failed stage of a finished run again",
		Long: `Run a failed or cancelled stage of a run that has ended again, as its next attempt, with
every stage after it that did not pass (skipped because it failed, or cancelled); the
stages that passed stay passed and the run goes on from there. 'sluice runs show ID' or
'sluice events --follow --run ID' follows it.`,
		Example:           `  sluice retry 01JD3K5W7N8Q2R4T6V8X0Z2B4D e2e`,
		Args:              exactArgs("ID", "STAGE"),
		ValidArgsFunction: completeRunThenStage(a),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.act(cmd, "retry", args[0], func(c *conn, ctx context.Context) (*sluicev1.RunState, error) {
				return c.api.Retry(ctx, args[0], args[1])
			})
		},
	}
	return cmd
}
