package main

import (
	"context"
	"fmt"
	"os/user"

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
cancelling one that already passed or failed is a conflict (exit 1).`,
		Example: `  sluice cancel 01JD3K5W7N8Q2R4T6V8X0Z2B4D
  sluice cancel 01JD3K5W7N8Q2R4T6V8X0Z2B4D --reason "superseded by a newer push"`,
		Args: exactArgs("ID"),
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
	var approver string
	cmd := &cobra.Command{
		Use:   "approve ID STAGE",
		Short: "Approve a stage that waits for approval",
		Long: `Release a stage declared with 'approval: required' that is waiting for a person (status
waiting_approval): it is dispatched at once. The approver is recorded in the run and in the
stage.approved event.`,
		Example: `  sluice approve 01JD3K5W7N8Q2R4T6V8X0Z2B4D production
  sluice approve 01JD3K5W7N8Q2R4T6V8X0Z2B4D production --as release-manager`,
		Args: exactArgs("ID", "STAGE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			who := approver
			if who == "" {
				who = currentUser()
			}
			return a.act(cmd, "approve", args[0], func(c *conn, ctx context.Context) (*sluicev1.RunState, error) {
				return c.api.Approve(ctx, args[0], args[1], who)
			})
		},
	}
	cmd.Flags().StringVar(&approver, "as", "", "approver name to record (default: the current user)")
	return cmd
}

func newRollbackCmd(a *app) *cobra.Command {
	var reason, by string
	cmd := &cobra.Command{
		Use:   "rollback ID",
		Short: "Roll back the rollout of a run",
		Long: `Roll back a run's rollout at once: the coordinator sets the canary's traffic weight to 0
(and tears the canary down when the pipeline says so), and the rollout stage fails with
your reason.`,
		Example: `  sluice rollback 01JD3K5W7N8Q2R4T6V8X0Z2B4D --reason "checkout errors in the canary"`,
		Args:    exactArgs("ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			who := by
			if who == "" {
				who = currentUser()
			}
			return a.act(cmd, "rollback", args[0], func(c *conn, ctx context.Context) (*sluicev1.RunState, error) {
				return c.api.Rollback(ctx, args[0], reason, who)
			})
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "rolled back from the CLI", "why, recorded in the run and its events")
	cmd.Flags().StringVar(&by, "as", "", "name to record as the one who rolled back (default: the current user)")
	return cmd
}

// act connects, calls one mutating verb of the run API and prints the run's state after it.
func (a *app) act(cmd *cobra.Command, verb, id string, call func(*conn, context.Context) (*sluicev1.RunState, error)) error {
	c, err := a.connect(cmd.Context(), "sluice "+verb)
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := apiCtx(cmd.Context())
	defer cancel()
	run, err := call(c, ctx)
	if err != nil {
		return fmt.Errorf("%s: %w", verb, runError(id, err))
	}
	fmt.Fprintf(a.stdout, "%s: run %s is %s\n", verb, run.GetId(), run.GetStatus().Short())
	return nil
}

func currentUser() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	return "unknown"
}
