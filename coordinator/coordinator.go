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
	"google.golang.org/protobuf/proto"

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
	Policy Policy
	// Lanes is the number of runs decided in parallel (each run always in the same lane).
	Lanes int
	// TickEvery is how often due retries and deadlines are checked.
	TickEvery time.Duration
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
	if c.Policy == (Policy{}) {
		c.Policy = DefaultPolicy()
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
	lockKV jetstream.KeyValue
	locker *locker
	tasks  jetstream.Stream
	// leaseKey derives each task's lease; shared by every coordinator of the fleet.
	leaseKey []byte
	rejected resultCounters
	// authenticated: the server checks credentials and permissions, so the principals in
	// API subjects are the callers'. Without it every caller is anonymous.
	authenticated bool
	cache         *runCache
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
	in  Input
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
	return &Coordinator{
		cfg:    c,
		log:    c.Logger.With("component", "coordinator", "id", c.ID),
		nc:     nc,
		js:     js,
		cache:  newRunCache(),
		locker: newLocker(),
		ready:  make(chan struct{}),
		now:    time.Now,
	}, nil
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
	if c.lockKV, err = c.js.KeyValue(ctx, c.cfg.Names.LocksBucket()); err != nil {
		return fmt.Errorf("open %s: %w", c.cfg.Names.LocksBucket(), err)
	}
	if c.tasks, err = c.js.Stream(ctx, c.cfg.Names.TasksStream()); err != nil {
		return fmt.Errorf("open %s: %w", c.cfg.Names.TasksStream(), err)
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
	svc, err := c.serveAPI()
	if err != nil {
		return abort(err)
	}
	defer func() { _ = svc.Stop() }()
	if c.cfg.HTTPAddr != "" {
		wg.Go(func() { fail(c.serveHTTP(ctx)) })
	}
	c.reconcileAll(ctx)
	wg.Go(func() { c.clock(ctx) })
	close(c.ready)
	c.log.Info("coordinator running", "lanes", len(c.lanes), "runs_active", c.cache.activeCount())
	<-ctx.Done()
	wg.Wait()
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

// process decides a run's queued inputs and commits them with one CAS, retrying on conflict
// with a concurrent coordinator.
func (c *Coordinator) process(ctx context.Context, run string, ws []work) {
	const maxConflicts = 50
	for range maxConflicts {
		st, rev, err := c.load(ctx, run, ws)
		if err != nil {
			finish(ws, nil, err)
			return
		}
		if rev != 0 && ws[0].create != nil {
			finish(ws, nil, fmt.Errorf("%w: run %s exists already", ErrConflict, run))
			return
		}
		c.publishOutbox(ctx, st)
		next := proto.Clone(st).(*sluicev1.RunState)
		next.Outbox = nil
		var d Decision
		changed := false
		errs := make([]error, len(ws))
		for i, w := range ws {
			in := w.in
			if in == nil {
				continue
			}
			di := c.cfg.Policy.Decide(next, in, c.now())
			if di.Err != nil {
				errs[i] = di.Err
				continue
			}
			if di.State == nil {
				d.Release = append(d.Release, di.Release...)
				continue
			}
			next = di.State
			changed = true
			d.Tasks = append(d.Tasks, di.Tasks...)
			d.Cancels = append(d.Cancels, di.Cancels...)
			d.PurgeQueued = d.PurgeQueued || di.PurgeQueued
			d.Acquire = append(d.Acquire, di.Acquire...)
			d.Release = append(d.Release, di.Release...)
			d.Evidence = append(d.Evidence, di.Evidence...)
		}
		if !changed && rev != 0 {
			// Dropping an input is only right on the latest state: a peer may have moved
			// the run past what this coordinator's cache shows.
			if fresh, err := c.runs.Get(ctx, run); err == nil && fresh.Revision() != rev {
				c.cache.invalidate(run)
				continue
			}
			for _, op := range d.Release {
				c.locker.push(lockReq{verb: lockRelease, run: run, op: op})
			}
			finishEach(ws, st, errs)
			return
		}
		// Evidence goes into the state it describes, so a crash before the commit leaves
		// the input to be decided (and the evidence written) again.
		for _, stage := range d.Evidence {
			if err := c.writeEvidence(ctx, next, stage); err != nil {
				c.log.Error("gate evidence not written", "run", run, "stage", stage, "err", err)
			}
		}
		newRev, err := c.commit(ctx, run, next, rev)
		if errors.Is(err, jetstream.ErrKeyExists) {
			c.cache.invalidate(run)
			if rev == 0 {
				finish(ws, nil, fmt.Errorf("%w: run %s exists already", ErrConflict, run))
				return
			}
			continue
		}
		if errors.Is(err, nats.ErrMaxPayload) {
			// Decide keeps states within MaxStateBytes; a server configured below it leaves
			// this run nothing to store. It fails alone: its inputs are dropped, not retried.
			c.log.Error("run state cannot be stored; dropping the run's inputs", "run", run, "bytes", proto.Size(next), "max_payload", c.nc.MaxPayload())
			finish(ws, nil, fmt.Errorf("%w: run %s: its state is %d bytes, above the server's max_payload of %d", ErrUnstorable, run, proto.Size(next), c.nc.MaxPayload()))
			return
		}
		if err != nil {
			finish(ws, nil, fmt.Errorf("store run %s: %w", run, err))
			return
		}
		c.cache.put(run, next, newRev)
		c.apply(ctx, next, d)
		finishEach(ws, next, errs)
		return
	}
	finish(ws, nil, fmt.Errorf("run %s: gave up after %d conflicting updates", run, maxConflicts))
}

func finish(ws []work, st *sluicev1.RunState, err error) {
	for _, w := range ws {
		if w.done != nil {
			w.done(st, err)
		}
	}
}

func finishEach(ws []work, st *sluicev1.RunState, errs []error) {
	for i, w := range ws {
		if w.done != nil {
			if errs[i] != nil {
				w.done(nil, errs[i])
			} else {
				w.done(st, nil)
			}
		}
	}
}

// load returns the run's state and KV revision; revision 0 with the create state of ws for
// a new run.
func (c *Coordinator) load(ctx context.Context, run string, ws []work) (*sluicev1.RunState, uint64, error) {
	if st, rev, ok := c.cache.get(run); ok {
		return st, rev, nil
	}
	entry, err := c.runs.Get(ctx, run)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		for _, w := range ws {
			if w.create != nil {
				return w.create, 0, nil
			}
		}
		return nil, 0, fmt.Errorf("%w: run %s", ErrNotFound, run)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("read run %s: %w", run, err)
	}
	var st sluicev1.RunState
	if err := proto.Unmarshal(entry.Value(), &st); err != nil {
		return nil, 0, fmt.Errorf("%w: decode run %s: %v", ErrUnstorable, run, err)
	}
	c.cache.put(run, &st, entry.Revision())
	return &st, entry.Revision(), nil
}

func (c *Coordinator) commit(ctx context.Context, run string, st *sluicev1.RunState, rev uint64) (uint64, error) {
	data, err := proto.Marshal(st)
	if err != nil {
		return 0, fmt.Errorf("encode: %w", err)
	}
	if rev == 0 {
		return c.runs.Create(ctx, run, data)
	}
	newRev, err := c.runs.Update(ctx, run, data, rev)
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence {
		return 0, jetstream.ErrKeyExists
	}
	return newRev, err
}

// apply carries out a committed decision. A failure here loses nothing: the state says what
// should exist, and reconcile republishes it.
func (c *Coordinator) apply(ctx context.Context, st *sluicev1.RunState, d Decision) {
	if d.PurgeQueued {
		if err := c.tasks.Purge(ctx, jetstream.WithPurgeSubject(c.cfg.Names.RunTasks(st.GetId()))); err != nil {
			c.log.Warn("purge queued tasks", "run", st.GetId(), "err", err)
		}
	}
	for _, op := range d.Release {
		c.locker.push(lockReq{verb: lockRelease, run: st.GetId(), op: op})
	}
	for _, op := range d.Acquire {
		c.locker.push(lockReq{verb: lockAcquire, run: st.GetId(), op: op})
	}
	for _, sig := range d.Cancels {
		data, _ := proto.Marshal(sig)
		if err := c.nc.Publish(c.cfg.Names.Cancel(st.GetId()), data); err != nil {
			c.log.Warn("send cancel", "run", st.GetId(), "err", err)
		}
	}
	futures := make([]jetstream.PubAckFuture, 0, len(d.Tasks)+len(st.GetOutbox()))
	for _, t := range d.Tasks {
		if f, err := c.publishTask(t); err != nil {
			c.log.Warn("publish task", "run", t.GetRunId(), "stage", t.GetStage(), "err", err)
		} else {
			futures = append(futures, f)
			c.cache.markTask(st.GetId(), taskID(t))
		}
	}
	evFutures := c.publishEvents(st)
	if c.await(ctx, append(futures, evFutures...)) && len(evFutures) == len(st.GetOutbox()) {
		c.cache.markEvents(st.GetId(), st.GetEventSeq())
	}
}

// await waits for publish acks; false if any failed.
func (c *Coordinator) await(ctx context.Context, fs []jetstream.PubAckFuture) bool {
	ok := true
	for _, f := range fs {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			ok = false
			c.log.Warn("publish not acknowledged", "subject", f.Msg().Subject, "err", err)
		case <-ctx.Done():
			return false
		}
	}
	return ok
}

func taskID(t *sluicev1.Task) string {
	return bus.TaskID(t)
}

func (c *Coordinator) publishTask(t *sluicev1.Task) (jetstream.PubAckFuture, error) {
	t.Lease = c.lease(t.GetRunId(), t.GetStage(), t.GetAttempt(), t.GetShardIndex(), t.GetRollout().GetSeq())
	data, err := proto.Marshal(t)
	if err != nil {
		return nil, err
	}
	msg := nats.NewMsg(c.cfg.Names.Task(t.GetKind().Slug(), t.GetPool(), t.GetRunId()))
	msg.Data = data
	msg.Header.Set(nats.MsgIdHdr, taskID(t))
	msg.Header.Set(bus.HeaderRun, t.GetRunId())
	msg.Header.Set(bus.HeaderStage, t.GetStage())
	msg.Header.Set(bus.HeaderAttempt, fmt.Sprint(t.GetAttempt()))
	msg.Header.Set(bus.HeaderShard, fmt.Sprint(t.GetShardIndex()))
	if t.GetTraceparent() != "" {
		msg.Header.Set(bus.HeaderTraceparent, t.GetTraceparent())
	}
	return c.js.PublishMsgAsync(msg)
}
