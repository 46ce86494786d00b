package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Config holds the provisioning and consumer settings shared by coordinators and workers.
// Zero fields take the defaults of WithDefaults.
type Config struct {
	Names           Names
	Replicas        int             // 1 default; 3 for a cluster
	AckWait         time.Duration   // task consumers; default 30s
	MaxDeliver      int             // default 5
	BackOff         []time.Duration // redelivery delays; default AckWait x 1, 2, 4, 8 (trimmed to MaxDeliver)
	EventsMaxAge    time.Duration   // default 30 days
	LogsMaxAge      time.Duration   // default 7 days
	LogsMaxBytes    int64           // default 1 GiB
	ResultsMaxAge   time.Duration   // default 7 days
	DuplicateWindow time.Duration   // default 10m
	// RunsMaxAge is how long a finished run's state is kept after its last write; an
	// active run's never expires. Default 30 days.
	RunsMaxAge time.Duration
	// TimingsMaxAge is how long a test's recorded duration outlives its last run. Default
	// 30 days.
	TimingsMaxAge time.Duration
	// ArtifactsMaxAge is how long artifacts (logs' summaries, reports, evidence) are kept.
	// Default 30 days.
	ArtifactsMaxAge time.Duration
}

// Defaults of Config.
const (
	DefaultAckWait         = 30 * time.Second
	DefaultMaxDeliver      = 5
	DefaultEventsMaxAge    = 30 * 24 * time.Hour
	DefaultLogsMaxAge      = 7 * 24 * time.Hour
	DefaultLogsMaxBytes    = int64(1 << 30)
	DefaultResultsMaxAge   = 7 * 24 * time.Hour
	DefaultDuplicateWindow = 10 * time.Minute
	DefaultRunsMaxAge      = 30 * 24 * time.Hour
	DefaultTimingsMaxAge   = 30 * 24 * time.Hour
	DefaultArtifactsMaxAge = 30 * 24 * time.Hour
	// MinMaxAge is the shortest retention the server accepts for a message's TTL.
	MinMaxAge = time.Second
	// RunsMarkerTTL is how long the runs bucket keeps the marker of an expired run, for
	// watchers to forget it.
	RunsMarkerTTL = time.Hour
	// WorkersTTL is how long a worker's heartbeat outlives its last write: a worker writes
	// every WorkersTTL/6, so one that is gone leaves the list within WorkersTTL.
	WorkersTTL = 30 * time.Second
	// LogsMaxChunksPerStage bounds the log chunks kept per stage (about 512 MiB of 32 KiB
	// chunks); past it the stage's own oldest chunks go.
	LogsMaxChunksPerStage = 16384
	// AdvisoriesMaxAge keeps max-deliveries advisories long enough for a coordinator that
	// was down over a weekend to still fail the stages they name.
	AdvisoriesMaxAge = 7 * 24 * time.Hour
)

// WithDefaults returns c with every zero field set to its default. The default BackOff
// starts at AckWait because the server uses BackOff[0] as the ack deadline of the first
// delivery: a dead worker's task is redelivered after AckWait, later ones back off.
func (c Config) WithDefaults() Config {
	if c.Names.Prefix == "" {
		c.Names = NewNames("")
	}
	if c.Replicas <= 0 {
		c.Replicas = 1
	}
	if c.AckWait <= 0 {
		c.AckWait = DefaultAckWait
	}
	if c.MaxDeliver == 0 {
		c.MaxDeliver = DefaultMaxDeliver
	}
	if len(c.BackOff) == 0 {
		c.BackOff = []time.Duration{c.AckWait, 2 * c.AckWait, 4 * c.AckWait, 8 * c.AckWait}
		if c.MaxDeliver > 0 && len(c.BackOff) > c.MaxDeliver {
			c.BackOff = c.BackOff[:c.MaxDeliver]
		}
	}
	for _, d := range []struct {
		v   *time.Duration
		def time.Duration
	}{
		{&c.EventsMaxAge, DefaultEventsMaxAge}, {&c.LogsMaxAge, DefaultLogsMaxAge}, {&c.ResultsMaxAge, DefaultResultsMaxAge},
		{&c.DuplicateWindow, DefaultDuplicateWindow}, {&c.RunsMaxAge, DefaultRunsMaxAge},
		{&c.TimingsMaxAge, DefaultTimingsMaxAge}, {&c.ArtifactsMaxAge, DefaultArtifactsMaxAge},
	} {
		if *d.v <= 0 {
			*d.v = d.def
		}
	}
	if c.LogsMaxBytes <= 0 {
		c.LogsMaxBytes = DefaultLogsMaxBytes
	}
	return c
}

// Validate reports settings the server would reject or that would redeliver a task while
// its worker still holds it. Call it on a config that went through WithDefaults.
func (c Config) Validate() error {
	if c.MaxDeliver < 1 && c.MaxDeliver != -1 {
		return fmt.Errorf("%w: MaxDeliver %d must be >= 1 (or -1 for unlimited)", ErrBadConfig, c.MaxDeliver)
	}
	if c.MaxDeliver != -1 && len(c.BackOff) > c.MaxDeliver {
		return fmt.Errorf("%w: %d BackOff steps exceed MaxDeliver %d", ErrBadConfig, len(c.BackOff), c.MaxDeliver)
	}
	for i, b := range c.BackOff {
		if b < c.AckWait {
			return fmt.Errorf("%w: BackOff[%d] %s is shorter than AckWait %s", ErrBadConfig, i, b, c.AckWait)
		}
	}
	for _, age := range []time.Duration{c.EventsMaxAge, c.ResultsMaxAge} {
		if age < c.DuplicateWindow {
			return fmt.Errorf("%w: max age %s is shorter than the duplicate window %s", ErrBadConfig, age, c.DuplicateWindow)
		}
	}
	for _, age := range []struct {
		name string
		d    time.Duration
	}{{"runs", c.RunsMaxAge}, {"timings", c.TimingsMaxAge}, {"artifacts", c.ArtifactsMaxAge}} {
		if age.d < MinMaxAge {
			return fmt.Errorf("%w: %s max age %s is below the server's minimum of %s", ErrBadConfig, age.name, age.d, MinMaxAge)
		}
	}
	return nil
}

// StreamConfigs are the streams of DESIGN section 3 (plus the advisories stream) for c.
func (c Config) StreamConfigs() []jetstream.StreamConfig {
	c = c.WithDefaults()
	n := c.Names
	return []jetstream.StreamConfig{
		{
			Name:        n.TasksStream(),
			Description: "Sluice tasks, one subject per kind, pool and run; consumed once by a worker",
			Subjects:    []string{n.AllTasks()},
			Retention:   jetstream.WorkQueuePolicy,
			Storage:     jetstream.FileStorage,
			Replicas:    c.Replicas,
			Duplicates:  c.DuplicateWindow,
		},
		{
			Name:        n.ResultsStream(),
			Description: "Sluice stage progress and results",
			Subjects:    []string{n.AllResults()},
			Retention:   jetstream.LimitsPolicy,
			Storage:     jetstream.FileStorage,
			Replicas:    c.Replicas,
			MaxAge:      c.ResultsMaxAge,
			Duplicates:  c.DuplicateWindow,
		},
		{
			Name:        n.EventsStream(),
			Description: "Sluice pipeline events (the public contract); event ids dedupe republishes",
			Subjects:    []string{n.AllEvents()},
			Retention:   jetstream.LimitsPolicy,
			Storage:     jetstream.FileStorage,
			Replicas:    c.Replicas,
			MaxAge:      c.EventsMaxAge,
			Duplicates:  c.DuplicateWindow,
		},
		{
			Name:        n.LogsStream(),
			Description: "Sluice stage logs",
			Subjects:    []string{n.AllLogs()},
			Retention:   jetstream.LimitsPolicy,
			Storage:     jetstream.FileStorage,
			Replicas:    c.Replicas,
			MaxAge:      c.LogsMaxAge,
			MaxBytes:    c.LogsMaxBytes,
			Discard:     jetstream.DiscardOld,
			// Workers cap each task's output; this holds a stage whose worker did not (all its
			// attempts and shards) to its own oldest chunks, never to other stages' logs.
			MaxMsgsPerSubject: LogsMaxChunksPerStage,
		},
		{
			Name:        n.AdvisoryStream(),
			Description: "Max-deliveries advisories of the tasks stream, kept while no coordinator runs",
			Subjects:    []string{n.MaxDeliveriesAdvisory()},
			Retention:   jetstream.LimitsPolicy,
			Storage:     jetstream.FileStorage,
			Replicas:    c.Replicas,
			MaxAge:      AdvisoriesMaxAge,
		},
	}
}

// Provision creates or updates every stream, KV bucket and object store of DESIGN section 3,
// idempotently: a second run changes nothing. It also creates the advisories stream that
// captures the tasks stream's MAX_DELIVERIES advisories, so none is lost while no
// coordinator runs.
//
// Each asset is retried until ctx ends: on a freshly formed cluster a create can take
// effect yet never be answered (seen with nats-server 2.15 in the compose fleet, two
// coordinators provisioning at once), and the next try finds the asset and updates it.
func Provision(ctx context.Context, js jetstream.JetStream, c Config) error {
	c = c.WithDefaults()
	if err := c.Validate(); err != nil {
		return err
	}
	for _, sc := range c.StreamConfigs() {
		if err := provisionOne(ctx, "stream "+sc.Name, func(ctx context.Context) error {
			_, err := js.CreateOrUpdateStream(ctx, sc)
			return err
		}); err != nil {
			return err
		}
	}
	for _, kc := range c.keyValueConfigs() {
		if err := provisionOne(ctx, "KV bucket "+kc.Bucket, func(ctx context.Context) error {
			_, err := js.CreateOrUpdateKeyValue(ctx, kc)
			return err
		}); err != nil {
			return err
		}
	}
	for _, oc := range c.objectStoreConfigs() {
		if err := provisionOne(ctx, "object store "+oc.Bucket, func(ctx context.Context) error {
			_, err := js.CreateOrUpdateObjectStore(ctx, oc)
			return err
		}); err != nil {
			return err
		}
	}
	return nil
}

func (c Config) keyValueConfigs() []jetstream.KeyValueConfig {
	n := c.Names
	kvs := []jetstream.KeyValueConfig{
		// A finished run's last write carries a TTL of RunsMaxAge (per-message TTLs need
		// LimitMarkerTTL); active runs' writes carry none.
		{Bucket: n.RunsBucket(), Description: "Sluice run state (CAS on revision)", History: 1, LimitMarkerTTL: RunsMarkerTTL},
		{Bucket: n.TimingsBucket(), Description: "Sluice per-test timings for shard balancing", History: 1, TTL: c.TimingsMaxAge},
		{Bucket: n.LocksBucket(), Description: "Sluice environment locks", History: 1},
		{Bucket: n.WorkersBucket(), Description: "Sluice workers' heartbeats (sluice workers list)", History: 1, TTL: WorkersTTL},
		{Bucket: n.SecretsBucket(), Description: "Sluice coordinators' shared secrets (only coordinators may read it)", History: 1},
	}
	for i := range kvs {
		kvs[i].Storage, kvs[i].Replicas = jetstream.FileStorage, c.Replicas
	}
	return kvs
}

func (c Config) objectStoreConfigs() []jetstream.ObjectStoreConfig {
	n := c.Names
	objs := []jetstream.ObjectStoreConfig{
		// Bundles are shared by every run of a commit and reused at submit time, so they
		// carry no TTL: one could expire under a run that just found it stored.
		{Bucket: n.SourcesStore(), Description: "Sluice source bundles by content digest"},
		{Bucket: n.ArtifactsStore(), Description: "Sluice artifacts by run/stage/name", TTL: c.ArtifactsMaxAge},
	}
	for i := range objs {
		objs[i].Storage, objs[i].Replicas = jetstream.FileStorage, c.Replicas
	}
	return objs
}

// Deprovision deletes every stream, bucket and object store Provision makes under c's
// names, with what they hold; what is already gone is no error.
func Deprovision(ctx context.Context, js jetstream.JetStream, c Config) error {
	c = c.WithDefaults()
	var errs []error
	deleted := func(what string, err error) {
		if err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) && !errors.Is(err, jetstream.ErrBucketNotFound) {
			errs = append(errs, fmt.Errorf("delete %s: %w", what, err))
		}
	}
	for _, sc := range c.StreamConfigs() {
		deleted("stream "+sc.Name, js.DeleteStream(ctx, sc.Name))
	}
	for _, kc := range c.keyValueConfigs() {
		deleted("KV bucket "+kc.Bucket, js.DeleteKeyValue(ctx, kc.Bucket))
	}
	for _, oc := range c.objectStoreConfigs() {
		deleted("object store "+oc.Bucket, js.DeleteObjectStore(ctx, oc.Bucket))
	}
	return errors.Join(errs...)
}

// provisionTry bounds one create-or-update request; provisionPause separates the tries.
const (
	provisionTry   = 5 * time.Second
	provisionPause = 250 * time.Millisecond
)

// provisionOne runs op until it succeeds, fails for a reason a retry cannot mend, or ctx
// ends. Only timeouts and a cluster without a JetStream leader yet are retried.
func provisionOne(ctx context.Context, what string, op func(context.Context) error) error {
	for try := 1; ; try++ {
		tctx, cancel := context.WithTimeout(ctx, provisionTry)
		err := op(tctx)
		cancel()
		if err == nil {
			return nil
		}
		retry := errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) ||
			errors.Is(err, jetstream.ErrJetStreamNotEnabled) || errors.Is(err, nats.ErrNoResponders)
		if !retry || ctx.Err() != nil {
			return fmt.Errorf("provision %s (try %d): %w", what, try, err)
		}
		slog.Default().Warn("provisioning: retrying", "asset", what, "try", try, "err", err)
		select {
		case <-ctx.Done():
			return fmt.Errorf("provision %s (try %d): %w", what, try, context.Cause(ctx))
		case <-time.After(provisionPause):
		}
	}
}

// WorkerConsumerConfig is the consumer WorkerConsumer creates for (kind, pool).
func WorkerConsumerConfig(c Config, kind, pool string, maxAckPending int) jetstream.ConsumerConfig {
	c = c.WithDefaults()
	name := c.Names.WorkerConsumer(kind, pool)
	return jetstream.ConsumerConfig{
		Durable:       name,
		Description:   "Sluice workers of kind " + kind + " in pool " + pool,
		FilterSubject: c.Names.TaskFilter(kind, pool),
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       c.AckWait,
		MaxDeliver:    c.MaxDeliver,
		BackOff:       c.BackOff,
		MaxAckPending: maxAckPending,
		// 0: the stream's replicas. Workers are not told the fleet's replica count, and the
		// server refuses a consumer whose replicas differ from its work-queue stream's.
		Replicas: 0,
	}
}

// WorkerConsumer creates or updates the shared durable pull consumer of (kind, pool): name
// Names.WorkerConsumer, filter Names.TaskFilter, explicit ack, AckWait, MaxDeliver with
// BackOff, MaxAckPending = maxAckPending (the pool's concurrency cap).
func WorkerConsumer(ctx context.Context, js jetstream.JetStream, c Config, kind, pool string, maxAckPending int) (jetstream.Consumer, error) {
	c = c.WithDefaults()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if kind == "" || pool == "" {
		return nil, fmt.Errorf("%w: worker consumer needs a kind and a pool (got %q, %q)", ErrBadConfig, kind, pool)
	}
	if maxAckPending < 1 {
		return nil, fmt.Errorf("%w: worker consumer %s/%s: max ack pending %d must be >= 1", ErrBadConfig, kind, pool, maxAckPending)
	}
	cc := WorkerConsumerConfig(c, kind, pool, maxAckPending)
	cons, err := js.CreateOrUpdateConsumer(ctx, c.Names.TasksStream(), cc)
	if err != nil {
		return nil, fmt.Errorf("worker consumer %s on %s: %w", cc.Durable, c.Names.TasksStream(), err)
	}
	return cons, nil
}
