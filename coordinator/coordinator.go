// Package coordinator turns pipelines into runs: it decides each run's next step with a pure
// function (Policy.Decide), stores the run state in KV with compare-and-swap, and applies the
// decision's effects (tasks, events, cancel signals) through a planner. Several coordinators
// may run against one server: a decision takes effect only if its CAS wins, and every task and
// event carries a deterministic Nats-Msg-Id, so a repeat is dropped by the server.
package coordinator

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-ci/sluice/coordinator/decide"
	"github.com/sluice-ci/sluice/internal/auth"
	"github.com/sluice-ci/sluice/internal/bus"
	sluicev1 "github.com/sluice-ci/sluice/proto/sluice/v1"
)

// Config configures a coordinator.
type Config struct {
	Names bus.Names
	Bus   bus.Config
	// HTTPAddr serves the HTTP API and dashboard when set (loopback by default in the CLI).
	HTTPAddr string
	// Auth is the fleet's trust file, policy and evidence key (`sluice auth init`). Without
	// it the HTTP API is read-only, no ref is protected, and no evidence is signed.
	Auth   *auth.Fleet
	Logger *slog.Logger
	// ID names this coordinator in logs and events (hostname-pid by default).
	ID     string
	Policy decide.Policy
	// Lanes is the number of runs decided in parallel (each run always in the same lane).
	Lanes int
	// TickEvery is how often due retries and deadlines are checked.
	TickEvery time.Duration
	// TracerProvider receives a span per run, stage attempt and task (NewTracerProvider
	// gives the ids the coordinator derives); nil: no tracing.
	TracerProvider trace.TracerProvider
	// EventsJSON publishes events as protojson (content-type application/json) instead of
	// protobuf, for subscribers without the protobuf types.
	EventsJSON bool
	// ReconcileEvery is how often tasks and events that a crashed peer decided but did not
	// publish are republished.
	ReconcileEvery time.Duration
}

func (c Config) withDefaults() Config {
	if c.Names.Prefix == "" {
		c.Names = bus.NewNames("")
	}
	c.Bus.Names = c.Names
	c.Bus = c.Bus.WithDefaults()
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.ID == "" {
		host, _ := os.Hostname()
		c.ID = fmt.Sprintf("%s-%d", host, os.Getpid())
	}
	if c.Policy == (decide.Policy{}) {
		c.Policy = decide.DefaultPolicy()
	}
	if c.Lanes <= 0 {
		c.Lanes = 32
	}
	if c.TickEvery <= 0 {
		c.TickEvery = 100 * time.Millisecond
	}
	if c.ReconcileEvery <= 0 {
		c.ReconcileEvery = 5 * time.Second
	}
	return c
}

// Coordinator advances runs. Create it with New and drive it with Run.
type Coordinator struct {
	cfg    Config
	log    *slog.Logger
	nc     *nats.Conn
	js     jetstream.JetStream
	runs   jetstream.KeyValue
	sealer *sealer
	lockKV jetstream.KeyValue
	locker *locker
	tasks  jetstream.Stream
	events jetstream.Stream
	// leaseKey derives each task's lease; shared by every coordinator of the fleet.
	leaseKey []byte
	// eventSource is every event's ce-source.
	eventSource string
	rejected    resultCounters
	// authenticated: the server checks credentials and permissions, so the principals in
	// API subjects are the callers'. Without it every caller is anonymous.
	authenticated bool
	cache         *runCache
	specs         checkedSpecs
	metrics       *metrics
	tracer        tracer
	lanes         []chan work
	ready         chan struct{}
	// now is the clock; tests replace it.
	now func() time.Time
}

// stateOverhead is what storing a run's state adds to its bytes (subject, headers).
const stateOverhead = 4 << 10

// work is one input for one run, processed in the run's lane.
type work struct {
	run string
	in  decide.Input
	// create holds a new run's state; the CAS is a create then.
	create *sluicev1.RunState
	// done receives the state after the input (or the error); may be nil.
	done func(*sluicev1.RunState, error)
}

// New prepares a coordinator on an open connection.
func New(nc *nats.Conn, c Config) (*Coordinator, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	c = c.withDefaults()
	coord := &Coordinator{
		cfg:         c,
		log:         c.Logger.With("component", "coordinator", "id", c.ID),
		nc:          nc,
		js:          js,
		cache:       newRunCache(),
		locker:      newLocker(),
		ready:       make(chan struct{}),
		now:         time.Now,
		eventSource: "/sluice/" + c.Names.Prefix + "/coordinator",
	}
	coord.metrics = newMetrics(coord)
	coord.tracer = newTracer(c.TracerProvider)
	return coord, nil
}

// Ready is closed once Run serves the run API, with every stored run resumed.
func (c *Coordinator) Ready() <-chan struct{} { return c.ready }

// Run provisions the bus, then serves until ctx is done. It returns after every goroutine it
// started has ended.
func (c *Coordinator) Run(ctx context.Context) error {
	if err := bus.Provision(ctx, c.js, c.cfg.Bus); err != nil {
		return fmt.Errorf("provision: %w", err)
	}
	var err error
	if c.runs, err = c.js.KeyValue(ctx, c.cfg.Names.RunsBucket()); err != nil {
		return fmt.Errorf("open %s: %w", c.cfg.Names.RunsBucket(), err)
	}
	if c.sealer, err = newSealer(c.runs, c.cfg.Bus.RunsMaxAge, c.log); err != nil {
		return err
	}
	if c.lockKV, err = c.js.KeyValue(ctx, c.cfg.Names.LocksBucket()); err != nil {
		return fmt.Errorf("open %s: %w", c.cfg.Names.LocksBucket(), err)
	}
	if c.tasks, err = c.js.Stream(ctx, c.cfg.Names.TasksStream()); err != nil {
		return fmt.Errorf("open %s: %w", c.cfg.Names.TasksStream(), err)
	}
	if c.events, err = c.js.Stream(ctx, c.cfg.Names.EventsStream()); err != nil {
		return fmt.Errorf("open %s: %w", c.cfg.Names.EventsStream(), err)
	}
	secrets, err := c.js.KeyValue(ctx, c.cfg.Names.SecretsBucket())
	if err != nil {
		return fmt.Errorf("open %s: %w", c.cfg.Names.SecretsBucket(), err)
	}
	if c.leaseKey, err = openLeaseKey(ctx, secrets); err != nil {
		return err
	}
	c.authenticated = c.nc.AuthRequired()
	if c.cfg.Policy.MaxStateBytes == 0 {
		// A KV value is one message: the payload limit, less what the stream adds.
		c.cfg.Policy.MaxStateBytes = int(c.nc.MaxPayload()) - stateOverhead
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	var wg sync.WaitGroup
	c.lanes = make([]chan work, c.cfg.Lanes)
	for i := range c.lanes {
		c.lanes[i] = make(chan work, 256)
		wg.Go(func() { c.lane(ctx, c.lanes[i]) })
	}
	ready := make(chan struct{})
	fail := func(err error) {
		if err != nil && ctx.Err() == nil {
			cancel(err)
		}
	}
	wg.Go(func() { fail(c.watch(ctx, ready)) })
	wg.Go(func() { fail(c.runLocks(ctx)) })
	select {
	case <-ready:
	case <-ctx.Done():
		wg.Wait()
		return context.Cause(ctx)
	}
	abort := func(err error) error {
		cancel(err)
		wg.Wait()
		return err
	}
	stopResults, err := c.consumeResults(ctx)
	if err != nil {
		return abort(err)
	}
	defer stopResults()
	stopAdvisories, err := c.consumeAdvisories(ctx)
	if err != nil {
		return abort(err)
	}
	defer stopAdvisories()
	stopAPI, err := c.serveAPI(ctx)
	if err != nil {
		return abort(err)
	}
	defer stopAPI()
	if c.cfg.HTTPAddr != "" {
		wg.Go(func() { fail(c.serveHTTP(ctx)) })
	}
	// The sealer outlives the lanes, so the runs they finish last are sealed too.
	sctx, stopSealer := context.WithCancel(context.WithoutCancel(ctx))
	sealed := make(chan struct{})
	go func() {
		defer close(sealed)
		c.sealer.run(sctx)
	}()
	c.reconcileAll(ctx)
	wg.Go(func() { c.clock(ctx) })
	close(c.ready)
	c.log.Info("coordinator running", "lanes", len(c.lanes), "runs_active", c.cache.activeCount())
	<-ctx.Done()
	wg.Wait()
	stopSealer()
	<-sealed
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
		return cause
	}
	return nil
}

// submit queues w in its run's lane. It fails only when ctx ends first.
func (c *Coordinator) submit(ctx context.Context, w work) error {
	h := fnv.New32a()
	_, _ = h.Write([]byte(w.run))
	select {
	case c.lanes[h.Sum32()%uint32(len(c.lanes))] <- w:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// call submits w and waits for its outcome.
func (c *Coordinator) call(ctx context.Context, w work) (*sluicev1.RunState, error) {
	type outcome struct {
		st  *sluicev1.RunState
		err error
	}
	ch := make(chan outcome, 1)
	w.done = func(st *sluicev1.RunState, err error) { ch <- outcome{st, err} }
	if err := c.submit(ctx, w); err != nil {
		return nil, err
	}
	select {
	case o := <-ch:
		return o.st, o.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// lane decides the inputs of its runs one run at a time, batching what is queued so that
// several inputs of one run cost one CAS.
func (c *Coordinator) lane(ctx context.Context, in <-chan work) {
	for {
		var batch []work
		select {
		case <-ctx.Done():
			return
		case w := <-in:
			batch = append(batch, w)
		}
	drain:
		for len(batch) < 256 {
			select {
			case w := <-in:
				batch = append(batch, w)
			default:
				break drain
			}
		}
		order := make([]string, 0, len(batch))
		byRun := make(map[string][]work, len(batch))
		for _, w := range batch {
			if _, ok := byRun[w.run]; !ok {
				order = append(order, w.run)
			}
			byRun[w.run] = append(byRun[w.run], w)
		}
		for _, run := range order {
			c.process(ctx, run, byRun[run])
		}
	}
}

func taskID(t *sluicev1.Task) string {
	return bus.TaskID(t)
}

func (c *Coordinator) publishTask(t *sluicev1.Task) (jetstream.PubAckFuture, error) {
	t.Lease = c.lease(t.GetRunId(), t.GetStage(), t.GetAttempt(), t.GetShardIndex(), t.GetRollout().GetSeq())
	t.Traceparent = taskTraceparent(t)
	data, err := proto.Marshal(t)
	if err != nil {
		return nil, err
	}
	msg := &nats.Msg{Subject: c.cfg.Names.Task(t.GetKind().Slug(), t.GetPool(), t.GetRunId()), Header: bus.TaskHeader(t, 1), Data: data}
	msg.Header.Set(nats.MsgIdHdr, taskID(t))
	return c.js.PublishMsgAsync(msg)
}
