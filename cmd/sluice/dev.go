package main

import (
	"errors"
	"fmt"
	"net"

	"github.com/spf13/cobra"

	"github.com/sluice-ci/sluice/internal/auth"
	"github.com/sluice-ci/sluice/internal/bus"
	"github.com/sluice-ci/sluice/internal/lockfile"
	"github.com/sluice-ci/sluice/workers"
)

// devDataDir is where `sluice dev` keeps its JetStream store, source cache and work trees.
const devDataDir = ".sluice/dev"

func newDevCmd(a *app) *cobra.Command {
	var (
		o           fleetOptions
		kindList    string
		secretsFile string
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

--auth DIR runs the server with the configuration 'sluice auth init --out DIR' wrote: every
client needs credentials, the coordinator and each kind's worker connect with their own, and
clients pass --creds DIR/creds/<role>.creds. Without it nothing is authenticated, which is
safe only on this machine's loopback.

Ctrl-C (or SIGTERM) stops it in order: the workers finish or hand back their tasks, then the
coordinator stops, then the server flushes its store. A second Ctrl-C exits at once.`,
		Example: `  # Everything with the defaults, then in another terminal:
  sluice dev
  sluice run examples/hello/pipeline.yaml

  # A coordinator and server only; workers run elsewhere:
  sluice dev --workers none
  sluice worker --kinds static,test

  # With authentication, and a client run as the CI submitter:
  sluice auth init --out .sluice/auth
  sluice dev --auth .sluice/auth
  sluice run examples/hello/pipeline.yaml --creds .sluice/auth/creds/submitter.creds

  # Throwaway state on other ports:
  sluice dev --data /tmp/sluice --nats-listen 127.0.0.1:4333 --http 127.0.0.1:8181`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			kinds, err := parseKinds(kindList)
			if err != nil {
				return usageErrorf(cmd, "--workers %q: %v", kindList, err)
			}
			if o.concurrency < 1 {
				return usageErrorf(cmd, "--concurrency %d: must be 1 or more", o.concurrency)
			}
			o.kinds = kinds
			if secretsFile != "" {
				s, err := workers.LoadSecrets(secretsFile)
				if err != nil {
					return usageError(cmd, fmt.Errorf("--secrets: %w", err))
				}
				o.secrets = s
			}
			ctx := cmd.Context()
			f, err := a.startFleet(ctx, o)
			if errors.Is(err, lockfile.ErrHeld) {
				return usageError(cmd, err)
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "sluice dev is running\n")
			fmt.Fprintf(a.stdout, "  NATS       %s   (other terminals: export SLUICE_NATS=%s)\n", f.natsURL, f.natsURL)
			if f.httpURL != "" {
				fmt.Fprintf(a.stdout, "  dashboard  %s\n", f.httpURL)
			}
			fmt.Fprintf(a.stdout, "  data       %s\n", o.dataDir)
			if o.authDir != "" {
				l := auth.Layout{Dir: o.authDir}
				fmt.Fprintf(a.stdout, "  auth       %s (clients: --creds %s; dashboard token %s)\n", o.authDir, l.Creds(auth.RoleSubmitter, auth.DefaultUser), l.Token(auth.RoleObserver, auth.DefaultUser))
			} else if !loopbackListen(o.natsListen) {
				fmt.Fprintf(a.stderr, "\nWARNING: NATS listens on %s without authentication: anyone who reaches it can open every gate.\n         Create credentials with `sluice auth init --out DIR` and pass --auth DIR.\n\n", o.natsListen)
			}
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
	f.StringVar(&o.authDir, "auth", "", "run with the credentials, policy and keys of an auth directory (`sluice auth init --out DIR`); default: no authentication, loopback only")
	f.StringVar(&secretsFile, "secrets", "", "YAML file of the secrets stages may read (see `sluice worker --help`); default: none")
	f.StringVar(&kindList, "workers", "all", "kinds to run workers for: all, none, or a list like static,test,e2e")
	f.StringVar(&o.pool, "pool", "default", "worker pool the workers serve")
	f.IntVar(&o.concurrency, "concurrency", 4, "tasks a worker runs at once, per kind")
	f.DurationVar(&o.ackWait, "ack-wait", bus.DefaultAckWait, "how long a task may go without a heartbeat before the server hands it to another worker")
	return cmd
}

// loopbackListen reports whether a listen address is on loopback.
func loopbackListen(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return host == "localhost" || ip != nil && ip.IsLoopback()
}
