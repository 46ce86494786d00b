package main

import (
	"fmt"
	"github.com/sluice-ci/sluice/internal/bus"
	"os"

	"github.com/spf13/cobra"
)

// devDataDir is where `sluice dev` keeps its JetStream store, source cache and work trees.
const devDataDir = ".sluice/dev"

func newDevCmd(a *app) *cobra.Command {
	var (
		o       fleetOptions
		workers string
	)
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run a whole fleet in this process: NATS, coordinator, workers, dashboard",
		Long: `Run a whole Sluice fleet in one process, for development and small setups: an embedded
NATS server with JetStream (its file store in --data, so runs survive a restart), every
stream, bucket and object store Sluice needs, a coordinator, a worker for the kinds in
--workers, and the HTTP API and dashboard.

Other processes connect to it: 'sluice run' and the other client commands, and extra
'sluice worker' processes that add capacity or kinds. It prints the NATS URL they use and
the dashboard URL.

Ctrl-C (or SIGTERM) stops it in order: the workers finish or hand back their tasks, then the
coordinator stops, then the server flushes its store. A second Ctrl-C exits at once.`,
		Example: `  # Everything with the defaults, then in another terminal:
  sluice dev
  sluice run examples/hello/pipeline.yaml

  # A coordinator and server only; workers run elsewhere:
  sluice dev --workers none
  sluice worker --kinds static,test

  # Throwaway state on other ports:
  sluice dev --data /tmp/sluice --nats-listen 127.0.0.1:4333 --http 127.0.0.1:8181`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			kinds, err := parseKinds(workers)
			if err != nil {
				return usageErrorf(cmd, "--workers %q: %v", workers, err)
			}
			if o.concurrency < 1 {
				return usageErrorf(cmd, "--concurrency %d: must be 1 or more", o.concurrency)
			}
			o.kinds = kinds
			if o.apiToken == "" {
				o.apiToken = os.Getenv(envAPIToken)
			}
			ctx := cmd.Context()
			f, err := a.startFleet(ctx, o)
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "sluice dev is running\n")
			fmt.Fprintf(a.stdout, "  NATS       %s   (other terminals: export SLUICE_NATS=%s)\n", f.natsURL, f.natsURL)
			if f.httpURL != "" {
				fmt.Fprintf(a.stdout, "  dashboard  %s\n", f.httpURL)
			}
			fmt.Fprintf(a.stdout, "  data       %s\n", o.dataDir)
			fmt.Fprintf(a.stdout, "  workers    %s (pool %s, %d at a time per kind)\n", kindSlugs(kinds), o.pool, o.concurrency)
			fmt.Fprintf(a.stdout, "Try: sluice run examples/hello/pipeline.yaml   Stop: Ctrl-C\n")
			werr := f.wait(ctx)
			a.log.Info("shutting down")
			serr := f.shutdown()
			if werr != nil {
				return werr
			}
			return serr
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.dataDir, "data", devDataDir, "directory for the JetStream store, source cache and work trees")
	f.StringVar(&o.natsListen, "nats-listen", "127.0.0.1:4222", "address the embedded NATS server listens on (port -1: any free port)")
	f.StringVar(&o.httpAddr, "http", "127.0.0.1:8080", "address of the HTTP API and dashboard ('' for none; port 0: any free port)")
	f.StringVar(&o.apiToken, "api-token", "", "bearer token for mutating HTTP API calls (default: $SLUICE_API_TOKEN; none: the HTTP API is read-only)")
	f.StringVar(&workers, "workers", "all", "kinds to run workers for: all, none, or a list like static,test,e2e")
	f.StringVar(&o.pool, "pool", "default", "worker pool the workers serve")
	f.IntVar(&o.concurrency, "concurrency", 4, "tasks a worker runs at once, per kind")
	f.DurationVar(&o.ackWait, "ack-wait", bus.DefaultAckWait, "how long a task may go without a heartbeat before the server hands it to another worker")
	return cmd
}
