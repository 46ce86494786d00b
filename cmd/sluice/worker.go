package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluice-ci/sluice/internal/bus"
	"github.com/sluice-ci/sluice/workers"
)

func newWorkerCmd(a *app) *cobra.Command {
	var (
		kinds       string
		pool        string
		concurrency int
		poolCap     int
		ackWait     time.Duration
		cacheDir    string
		workDir     string
		grace       time.Duration
		id          string
	)
	cmd := &cobra.Command{
		Use:   "worker",
		Short: "Run a worker: it pulls and runs the tasks of some stage kinds",
		Long: `Run a worker against an existing NATS server (--nats). For each kind in --kinds it pulls
tasks from the shared consumer of (kind, pool), at most --concurrency at a time per kind;
it fetches the run's source bundle (cached by digest under --cache-dir), runs the stage in
a fresh tree under --work-dir, streams the output to the logs stream and reports a typed
result.

Workers of a kind share one consumer: starting another worker adds capacity and nothing
else changes. A worker that dies loses nothing: its task is redelivered to another after the
ack wait. Kinds: static, test, contract, e2e, load, backup-verify, traffic-shift.

Ctrl-C (or SIGTERM) stops pulling, lets the running tasks finish within --grace, then hands
the rest back to the fleet.`,
		Example: `  sluice worker --kinds static,test
  sluice worker --nats nats://nats-1:4222 --creds worker.creds --kinds e2e,load --pool big --concurrency 2`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ks, err := parseKinds(kinds)
			if err != nil {
				return usageErrorf(cmd, "--kinds %q: %v", kinds, err)
			}
			if len(ks) == 0 {
				return usageErrorf(cmd, "--kinds: name at least one kind, or all")
			}
			if concurrency < 1 {
				return usageErrorf(cmd, "--concurrency %d: must be 1 or more", concurrency)
			}
			ctx := cmd.Context()
			c, err := a.connect(ctx, "sluice worker")
			if err != nil {
				return err
			}
			defer c.Close()
			timings, err := c.js.KeyValue(ctx, c.names.TimingsBucket())
			if err != nil {
				return fmt.Errorf("open %s (is the bus provisioned? start a coordinator or `sluice dev` first): %w", c.names.TimingsBucket(), err)
			}
			w, err := workers.New(c.nc, workers.Config{
				Names:       c.names,
				Bus:         bus.Config{Names: c.names, AckWait: ackWait}.WithDefaults(),
				Kinds:       ks,
				Pool:        pool,
				Concurrency: concurrency,
				PoolCap:     poolCap,
				CacheDir:    cacheDir,
				WorkDir:     workDir,
				Grace:       grace,
				ID:          id,
				Logger:      a.log,
				Registry:    kindRegistry(timings),
			})
			if err != nil {
				return fmt.Errorf("worker: %w", err)
			}
			a.log.Info("worker starting", "nats", c.url, "kinds", kindSlugs(ks), "pool", pool, "concurrency", concurrency)
			if err := w.Run(ctx); err != nil {
				return fmt.Errorf("worker: %w", err)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&kinds, "kinds", "all", "kinds to run: all, or a list like static,test,e2e")
	f.StringVar(&pool, "pool", "default", "pool to serve; stages choose theirs with 'pool:'")
	f.IntVar(&concurrency, "concurrency", 4, "tasks run at once, per kind")
	f.IntVar(&poolCap, "pool-cap", workers.DefaultPoolCap, "tasks in flight across every worker of a kind in the pool (give every worker of a pool the same value)")
	f.DurationVar(&ackWait, "ack-wait", bus.DefaultAckWait, "how long a task may go without a heartbeat before the server hands it to another worker")
	f.StringVar(&cacheDir, "cache-dir", "", "source bundle cache, by digest (default: $TMPDIR/sluice/cache)")
	f.StringVar(&workDir, "work-dir", "", "where each task's tree is extracted (default: $TMPDIR/sluice/work)")
	f.DurationVar(&grace, "grace", 30*time.Second, "on SIGTERM, how long running tasks may take to finish before they are handed back")
	f.StringVar(&id, "id", "", "worker id in results and logs (default: hostname-pid)")
	return cmd
}
