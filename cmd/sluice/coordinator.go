package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluice-ci/sluice/coordinator"
	"github.com/sluice-ci/sluice/coordinator/decide"
	"github.com/sluice-ci/sluice/internal/auth"
	"github.com/sluice-ci/sluice/internal/bus"
)

func newCoordinatorCmd(a *app) *cobra.Command {
	var (
		httpAddr string
		replicas int
		id       string
		authDir  string
		user     string
		runTasks int
		keep     bus.Config
		evJSON   bool
	)
	cmd := &cobra.Command{
		Use:   "coordinator",
		Short: "Run a coordinator: it advances runs and serves the run API",
		Long: `Run a coordinator against an existing NATS server (--nats). It creates or updates the
streams, buckets and object stores Sluice needs, serves the run API on NATS
(<prefix>.api.runs.*) and, with --http, the HTTP API and dashboard; it turns submitted runs
into tasks, records results, advances each run's DAG and publishes an event for every
transition.

--auth DIR (from 'sluice auth init') connects with DIR/creds/coordinator.creds, checks HTTP
tokens against DIR/trust.json, enforces DIR/policy.yaml (protected refs, approval groups)
and signs evidence with DIR/coordinator/evidence.key. Without it the HTTP API is read-only
and no ref is protected; on a server that does not authenticate clients every caller is
anonymous, and the coordinator warns unless the server is on loopback.

Run several for high availability: they share the work, and a decision takes effect only
if its compare-and-swap on the run's state wins, so no stage is dispatched twice. A
coordinator that restarts resumes every run where it was.

Events are CloudEvents in binary mode (ce-* headers, content-type, ce-dataschema naming
the protobuf message sluice.v1.Event); --events-json publishes their payload as protojson
(content-type application/json) for subscribers without the protobuf types. Sluice's own
readers take either.

With OTEL_EXPORTER_OTLP_ENDPOINT (or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) set, each run is
a trace exported over OTLP/HTTP: the run's span, a span per stage attempt, a span per task
(shard or rollout action); a task's traceparent reaches its steps as TRACEPARENT.

Prometheus metrics are on http://HTTP/metrics (see --http): stages and runs by outcome,
durations, dispatch latency, queues by kind and pool, dropped results, canary weights and
verdicts. dashboards/sluice.json is a Grafana dashboard of them.

Retention: a finished run's state is kept --keep-runs after it ends (then 'sluice runs
show' no longer finds it; its events stay --keep-events); a test's recorded duration
--keep-timings after it last ran; artifacts --keep-artifacts. Active runs never expire.
The coordinator applies these to the buckets each time it starts, so give every
coordinator of a fleet the same values.

Ctrl-C (or SIGTERM) stops it after the decisions in flight are stored.`,
		Example: `  sluice coordinator --nats nats://nats-1:4222 --auth /etc/sluice/auth
  # A second one, for HA, without HTTP:
  sluice coordinator --nats nats://nats-2:4222 --auth /etc/sluice/auth --http ''
  # On a 3-node NATS cluster, with replicated streams:
  sluice coordinator --nats nats://nats-1:4222,nats://nats-2:4222 --auth /etc/sluice/auth --replicas 3`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if runTasks < 1 {
				return usageErrorf(cmd, "--max-run-tasks %d: must be 1 or more", runTasks)
			}
			if replicas < 1 || replicas > 5 {
				return usageErrorf(cmd, "--replicas %d: must be from 1 to 5", replicas)
			}
			for _, k := range []struct {
				flag string
				d    time.Duration
			}{{"keep-runs", keep.RunsMaxAge}, {"keep-timings", keep.TimingsMaxAge}, {"keep-artifacts", keep.ArtifactsMaxAge}, {"keep-events", keep.EventsMaxAge}} {
				if k.d < bus.MinMaxAge {
					return usageErrorf(cmd, "--%s %s: must be at least %s", k.flag, k.d, bus.MinMaxAge)
				}
			}
			if keep.EventsMaxAge < bus.DefaultDuplicateWindow {
				return usageErrorf(cmd, "--keep-events %s: must be at least the %s duplicate window", keep.EventsMaxAge, bus.DefaultDuplicateWindow)
			}
			var fleetAuth *auth.Fleet
			creds := a.creds
			if authDir != "" {
				var err error
				if fleetAuth, err = auth.LoadFleet(authDir); err != nil {
					return usageError(cmd, fmt.Errorf("--auth %s: %w", authDir, err))
				}
				if creds == "" {
					creds = fleetAuth.Layout.Creds(auth.RoleCoordinator, user)
				}
			}
			ctx := cmd.Context()
			c, err := a.connectAs(ctx, "sluice coordinator", creds)
			if err != nil {
				return err
			}
			defer c.Close()
			a.warnUnauthenticated(c)
			tp, stopTracing, err := tracingFromEnv(ctx)
			if err != nil {
				return err
			}
			defer stopTracing()
			policy := decide.DefaultPolicy()
			policy.MaxRunTasks = runTasks
			cfg := coordinator.Config{
				Policy: policy,
				Names:  c.names,
				Bus: bus.Config{
					Names: c.names, Replicas: replicas, EventsMaxAge: keep.EventsMaxAge,
					RunsMaxAge: keep.RunsMaxAge, TimingsMaxAge: keep.TimingsMaxAge, ArtifactsMaxAge: keep.ArtifactsMaxAge,
				}.WithDefaults(),
				HTTPAddr:       httpAddr,
				Auth:           fleetAuth,
				Logger:         a.log,
				ID:             id,
				EventsJSON:     evJSON,
				TracerProvider: tp,
			}
			coord, err := coordinator.New(c.nc, cfg)
			if err != nil {
				return fmt.Errorf("coordinator: %w", err)
			}
			a.log.Info("coordinator starting", "nats", c.url, "http", httpAddr, "auth", authDir != "")
			if err := coord.Run(ctx); err != nil {
				return fmt.Errorf("coordinator: %w", err)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&httpAddr, "http", "127.0.0.1:8080", "address of the HTTP API and dashboard ('' for none)")
	f.IntVar(&replicas, "replicas", 1, "replicas of every stream and bucket (3 on a 3-node NATS cluster)")
	f.StringVar(&id, "id", "", "name of this coordinator in logs (default: hostname-pid)")
	f.StringVar(&authDir, "auth", "", "auth directory from `sluice auth init`: credentials, trust file, policy and evidence key")
	f.StringVar(&user, "user", auth.DefaultUser, "with --auth: the coordinator user whose credentials to use")
	f.IntVar(&runTasks, "max-run-tasks", decide.DefaultMaxRunTasks, "tasks of one run in flight at once; the rest of its shards wait, so a huge run cannot starve the runs after it")
	f.BoolVar(&evJSON, "events-json", false, "publish events' payload as protojson (content-type application/json) instead of protobuf")
	f.DurationVar(&keep.RunsMaxAge, "keep-runs", bus.DefaultRunsMaxAge, "how long a finished run's state is kept after it ends")
	f.DurationVar(&keep.TimingsMaxAge, "keep-timings", bus.DefaultTimingsMaxAge, "how long a test's recorded duration is kept after it last ran")
	f.DurationVar(&keep.ArtifactsMaxAge, "keep-artifacts", bus.DefaultArtifactsMaxAge, "how long artifacts (reports, SARIF, evidence) are kept")
	f.DurationVar(&keep.EventsMaxAge, "keep-events", bus.DefaultEventsMaxAge, "how long the events stream keeps an event")
	return cmd
}
