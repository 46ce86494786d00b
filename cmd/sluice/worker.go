package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"

	"github.com/sluice-ci/sluice/internal/auth"
	"github.com/sluice-ci/sluice/internal/bus"
	sluicev1 "github.com/sluice-ci/sluice/proto/sluice/v1"
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
		authDir     string
		user        string
		logLimit    string
		secretsFile string
		stepUIDs    string
		unsafeUser  bool
		metricsAddr string
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

Steps are untrusted code from the repository: each runs as a user of its own (one uid per
task slot, from --step-uids) in a new PID namespace, with its own HOME and TMPDIR in its
tree, so it cannot read the worker's environment, credentials or caches nor other tasks'
trees, and every process it starts ends with it. That needs root (a container or VM of the
worker's own is best); without it the worker refuses to start, unless --unsafe-shared-user.
After each task the worker kills every process left with the task's uid, so workers that
share a kernel without a PID namespace between them (one on the host beside workers in
containers) need disjoint --step-uids ranges.
Steps read no secret but the ones --secrets grants their pipeline and ref:

  secrets:
    - {name: DATABASE_URL, pipelines: [payments], refs: [main], protected: true}
    - {name: NPM_TOKEN, from_env: CI_NPM_TOKEN}

On a fleet with authentication a worker connects as a worker-<kind> user, which may pull only
that kind's tasks of its pools and publish results only under its own name: --auth DIR gives
each kind its own connection with DIR/creds/worker-<kind>.creds (or the --user's).

--metrics ADDR serves Prometheus metrics on http://ADDR/metrics: tasks by kind and
outcome, their durations, tasks in flight and slots, and the wait from dispatch to pickup
(sluice_worker_*; deploy/grafana/sluice.json charts them with the coordinator's).

Ctrl-C (or SIGTERM) stops pulling, lets the running tasks finish within --grace, then hands
the rest back to the fleet.`,
		Example: `  sluice worker --kinds static,test
  sluice worker --nats nats://nats-1:4222 --auth /etc/sluice/auth --kinds e2e,load --concurrency 2
  # A machine with its own user (sluice auth add-user worker-e2e ci-7 --pools big):
  sluice worker --nats nats://nats-1:4222 --auth /etc/sluice/auth --user ci-7 --kinds e2e --pool big`,
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
			limit, err := parseSize(logLimit)
			if err != nil {
				return usageErrorf(cmd, "--log-limit %q: %v", logLimit, err)
			}
			iso, err := parseIsolation(secretsFile, stepUIDs, unsafeUser)
			if err != nil {
				return usageError(cmd, err)
			}
			if authDir != "" && a.creds != "" {
				return usageErrorf(cmd, "--auth and --creds exclude each other: --auth picks each kind's credentials from DIR/creds")
			}
			ctx := cmd.Context()
			// With --auth each kind connects with its own credentials; otherwise one
			// connection (with --creds, if any) serves every kind.
			groups := [][]sluicev1.StageKind{ks}
			if authDir != "" {
				groups = nil
				for _, k := range ks {
					groups = append(groups, []sluicev1.StageKind{k})
				}
			}
			var metrics *prometheus.Registry
			if metricsAddr != "" {
				metrics = prometheus.NewRegistry()
			}
			var ws []*workers.Worker
			for _, group := range groups {
				creds := a.creds
				if authDir != "" {
					creds = auth.Layout{Dir: authDir}.Creds(auth.WorkerRole(group[0]), user)
				}
				c, err := a.connectAs(ctx, "sluice worker "+kindSlugs(group), creds)
				if err != nil {
					return err
				}
				defer c.Close()
				a.warnUnauthenticated(c)
				reg, err := workerRegistry(ctx, c.nc, c.names, group)
				if err != nil {
					return err
				}
				w, err := workers.New(c.nc, workers.Config{
					Names:       c.names,
					Bus:         bus.Config{Names: c.names, AckWait: ackWait}.WithDefaults(),
					Kinds:       group,
					Pool:        pool,
					Concurrency: concurrency,
					PoolCap:     poolCap,
					CacheDir:    cacheDir,
					WorkDir:     workDir,
					Grace:       grace,
					ID:          id,
					Logger:      a.log,
					Registry:    reg,
					LogLimit:    limit,
					Secrets:     iso.secrets,
					StepUID:     iso.uid, StepUIDs: iso.uids,
					UnsafeSharedUser: iso.unsafe,
					Metrics:          registerer(metrics),
				})
				if err != nil {
					return fmt.Errorf("worker: %w", err)
				}
				ws = append(ws, w)
			}
			if metrics != nil {
				stop, err := serveMetrics(ctx, metricsAddr, metrics, a.log)
				if err != nil {
					return usageErrorf(cmd, "--metrics %s: %v", metricsAddr, err)
				}
				defer stop()
			}
			a.log.Info("worker starting", "nats", a.natsTarget(), "kinds", kindSlugs(ks), "pool", pool, "concurrency", concurrency, "metrics", metricsAddr)
			return runAll(ctx, ws)
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
	f.StringVar(&logLimit, "log-limit", "8MiB", "output a task's steps may write to the logs stream; the rest is dropped with a marker")
	f.StringVar(&secretsFile, "secrets", "", "YAML file of the secrets stages may read, each for the pipelines and refs it names (default: none)")
	f.StringVar(&stepUIDs, "step-uids", fmt.Sprintf("%d+%d", workers.DefaultStepUID, workers.DefaultStepUIDs), "BASE+COUNT: uids steps run as (BASE is their shared group; one uid per task slot of the host's workers)")
	f.BoolVar(&unsafeUser, "unsafe-shared-user", false, "run steps as the worker's own user, without a PID namespace, on a machine that cannot isolate them: steps can read the worker's credentials")
	f.StringVar(&authDir, "auth", "", "auth directory (`sluice auth init`): each kind connects with DIR/creds/worker-<kind>[-USER].creds")
	f.StringVar(&user, "user", auth.DefaultUser, "with --auth: the user whose credentials to use (`sluice auth add-user worker-KIND USER`)")
	f.StringVar(&metricsAddr, "metrics", "", "serve Prometheus metrics on http://ADDR/metrics (e.g. 127.0.0.1:9464; default: none)")
	return cmd
}

// registerer is reg as a prometheus.Registerer, nil (no metrics) when reg is.
func registerer(reg *prometheus.Registry) prometheus.Registerer {
	if reg == nil {
		return nil
	}
	return reg
}

// serveMetrics serves reg on addr until stop is called or ctx ends.
func serveMetrics(ctx context.Context, addr string, reg *prometheus.Registry, log *slog.Logger) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server", "addr", addr, "err", err)
		}
	}()
	stopCtx := context.AfterFunc(ctx, func() { _ = srv.Close() })
	return func() {
		stopCtx()
		_ = srv.Close()
		<-done
	}, nil
}

// runAll runs the workers until ctx ends or one fails; a failure stops the others.
func runAll(ctx context.Context, ws []*workers.Worker) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make(chan error, len(ws))
	for _, w := range ws {
		go func() {
			err := w.Run(ctx)
			if err != nil {
				cancel()
			}
			errs <- err
		}()
	}
	var first error
	for range ws {
		if err := <-errs; err != nil && first == nil {
			first = fmt.Errorf("worker: %w", err)
		}
	}
	return first
}

// parseSize reads a byte size: a number with an optional unit (B, KiB, MiB, GiB, KB, MB, GB).
func parseSize(s string) (int64, error) {
	units := []struct {
		suffix string
		n      int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3}, {"B", 1}}
	num, mult := strings.TrimSpace(s), int64(1)
	for _, u := range units {
		if v, ok := strings.CutSuffix(num, u.suffix); ok {
			num, mult = strings.TrimSpace(v), u.n
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n <= 0 || n > (1<<40)/mult {
		return 0, errors.New("want a positive size such as 8MiB, 512KiB or 1048576")
	}
	return n * mult, nil
}

// isolation is how a worker runs steps: the secrets it grants, its step users.
type isolation struct {
	secrets   *workers.Secrets
	uid, uids int
	unsafe    bool
}

func parseIsolation(secretsFile, stepUIDs string, unsafe bool) (isolation, error) {
	iso := isolation{unsafe: unsafe}
	if secretsFile != "" {
		s, err := workers.LoadSecrets(secretsFile)
		if err != nil {
			return iso, fmt.Errorf("--secrets: %w", err)
		}
		iso.secrets = s
	}
	base, count, ok := strings.Cut(stepUIDs, "+")
	var err1, err2 error
	iso.uid, err1 = strconv.Atoi(base)
	iso.uids, err2 = strconv.Atoi(count)
	if !ok || err1 != nil || err2 != nil || iso.uid < 1000 || iso.uids < 2 {
		return iso, fmt.Errorf("--step-uids %q: want BASE+COUNT, e.g. 200000+1024 (BASE 1000 or above)", stepUIDs)
	}
	return iso, nil
}
