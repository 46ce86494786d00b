package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/sluice-ci/sluice/coordinator"
	"github.com/sluice-ci/sluice/internal/bus"
)

// envAPIToken holds the bearer token of the HTTP API when --api-token is not given; a flag
// default would print the secret in --help.
const envAPIToken = "SLUICE_API_TOKEN"

func newCoordinatorCmd(a *app) *cobra.Command {
	var (
		httpAddr string
		apiToken string
		replicas int
		id       string
	)
	cmd := &cobra.Command{
		Use:   "coordinator",
		Short: "Run a coordinator: it advances runs and serves the run API",
		Long: `Run a coordinator against an existing NATS server (--nats). It creates or updates the
streams, buckets and object stores Sluice needs, serves the run API on NATS
(<prefix>.api.runs.*) and, with --http, the HTTP API and dashboard; it turns submitted runs
into tasks, records results, advances each run's DAG and publishes an event for every
transition.

Run several for high availability: they share the work, and a decision takes effect only
if its compare-and-swap on the run's state wins, so no stage is dispatched twice. A
coordinator that restarts resumes every run where it was.

Ctrl-C (or SIGTERM) stops it after the decisions in flight are stored.`,
		Example: `  sluice coordinator --nats nats://nats-1:4222 --creds coordinator.creds
  # A second one, for HA, without HTTP:
  sluice coordinator --nats nats://nats-2:4222 --http ''
  # On a 3-node NATS cluster, with replicated streams:
  sluice coordinator --nats nats://nats-1:4222,nats://nats-2:4222 --replicas 3`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if replicas < 1 || replicas > 5 {
				return usageErrorf(cmd, "--replicas %d: must be from 1 to 5", replicas)
			}
			if apiToken == "" {
				apiToken = os.Getenv(envAPIToken)
			}
			ctx := cmd.Context()
			c, err := a.connect(ctx, "sluice coordinator")
			if err != nil {
				return err
			}
			defer c.Close()
			coord, err := coordinator.New(c.nc, coordinator.Config{
				Names:    c.names,
				Bus:      bus.Config{Names: c.names, Replicas: replicas}.WithDefaults(),
				HTTPAddr: httpAddr,
				APIToken: apiToken,
				Logger:   a.log,
				ID:       id,
			})
			if err != nil {
				return fmt.Errorf("coordinator: %w", err)
			}
			a.log.Info("coordinator starting", "nats", c.url, "http", httpAddr)
			if err := coord.Run(ctx); err != nil {
				return fmt.Errorf("coordinator: %w", err)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&httpAddr, "http", "127.0.0.1:8080", "address of the HTTP API and dashboard ('' for none)")
	f.StringVar(&apiToken, "api-token", "", "bearer token for mutating HTTP API calls (default: $SLUICE_API_TOKEN; none: the HTTP API is read-only)")
	f.IntVar(&replicas, "replicas", 1, "replicas of every stream and bucket (3 on a 3-node NATS cluster)")
	f.StringVar(&id, "id", "", "name of this coordinator in logs (default: hostname-pid)")
	return cmd
}
