// Package workers is the worker runtime: it pulls the tasks of its kinds from the shared
// durable consumers, runs each with the kind's Handler, streams the logs, and reports the
// outcome in the order STARTED -> heartbeats -> final Result -> ack (DESIGN section 3),
// except that a task ending within Config.StartedAfter sends no STARTED: its final result
// carries the start.
package workers

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/sluice-ci/sluice/internal/bus"
	"github.com/sluice-ci/sluice/internal/source"
	sluicev1 "github.com/sluice-ci/sluice/proto/sluice/v1"
	"github.com/sluice-ci/sluice/workers/exec"
)

// Defaults of Config.
const (
	DefaultPool  = "default"
	DefaultGrace = 10 * time.Second
	// DefaultPoolCap is the in-flight bound of a (kind, pool) when none is configured: high
	// enough that adding workers adds capacity.
	DefaultPoolCap = 1024
	// DefaultStartedAfter is how long a task runs before its worker reports the start.
	DefaultStartedAfter = 100 * time.Millisecond
)

const (
	// publishTimeout bounds a result publish, the ack, and the wait for log acks.
	publishTimeout = 10 * time.Second
	// cancelMemory is how long a cancel signal is remembered, so a task of a cancelled run
	// pulled just after the signal (before the coordinator's purge) does not run.
	cancelMemory = 10 * time.Minute
	// pullRetry is the pause after a pull that failed for a reason other than the long
	// poll expiring.
	pullRetry = time.Second
)

// Causes of a task's cancellation.
var (
	errHandBack     = errors.New("worker stopping: task handed back")
	errCancelSignal = errors.New("cancel signal")
)

// Config configures a Worker. Zero fields take defaults.
type Config struct {
	Names       bus.Names            // default: Bus.Names, then bus.NewNames("")
	Bus         bus.Config           // AckWait (heartbeats every AckWait/3), MaxDeliver, BackOff
	Kinds       []sluicev1.StageKind // default: every kind
	Pool        string               // default DefaultPool
	Concurrency int                  // tasks at once per kind; default 1
	// PoolCap bounds the tasks in flight across every worker of a (kind, pool): the shared
	// consumer's MaxAckPending. Every worker of a pool should set the same value; each still
	// runs at most Concurrency itself. Default DefaultPoolCap.
	PoolCap  int
	CacheDir string        // source bundle cache; default <tmp>/sluice/cache
	WorkDir  string        // per-task work trees; default <tmp>/sluice/work
	Grace    time.Duration // how long in-flight tasks may finish on stop; default DefaultGrace
	ID       string        // worker id in results; default hostname-pid
	Logger   *slog.Logger  // default slog.Default()
	Registry *Registry     // default DefaultRegistry()
	// LogLimit bounds the bytes a task's steps may write to the logs stream; the rest is
	// dropped with a marker. Default DefaultLogLimit.
	LogLimit int64
	// Secrets is what stages may read of the worker's environment; nil grants nothing.
	Secrets *Secrets
	// StepUID is the group every step user shares; the StepUIDs-1 uids after it are the
	// step users, one per task slot of the host's workers. Defaults DefaultStepUID and
	// DefaultStepUIDs.
	StepUID, StepUIDs int
	// UnsafeSharedUser runs steps as the worker's own user without a PID namespace, for
	// machines that cannot isolate them: a step can then read everything the worker can,
	// its credentials included.
	UnsafeSharedUser bool
	// Metrics receives the worker's metrics (MetricTasks and the others); nil: none.
	Metrics prometheus.Registerer
	// StartedAfter is how long a task runs before the worker reports its start (a STARTED
	// result): a task that ends sooner sends only its final result, which carries the
	// start, so a quick stage costs the bus one result instead of two. A traffic shift
	// reports its start before it begins, whatever this says. Default DefaultStartedAfter;
	// negative: at once.
	StartedAfter time.Duration
}

// Worker serves the tasks of its kinds. Create it with New, start it with Run.
type Worker struct {
	nc       *nats.Conn
	js       jetstream.JetStream
	c        Config
	log      *slog.Logger
	handlers map[sluicev1.StageKind]Handler

	// Set by Run before any task starts.
	sources   *source.Cache
	artifacts jetstream.ObjectStore

	// id is who the worker's connection is; results go out under it.
	id bus.Identity
	// uids are the task slots' step users; nil with UnsafeSharedUser.
	uids *uidPool
	// caches are the step cache directories made ready, so a task pays no syscalls for one
	// that exists already.
	caches sync.Map
	// metrics is nil without Config.Metrics.
	metrics *workerMetrics

	mu          sync.Mutex
	inflight    map[*inflight]struct{}
	cancels     []rememberedCancel
	handingBack bool
}

type inflight struct {
	task   *sluicev1.Task
	cancel context.CancelCauseFunc
}

type rememberedCancel struct {
	sig *sluicev1.CancelSignal
	at  time.Time
}

// New checks c, fills its defaults and returns a Worker that uses nc.
func New(nc *nats.Conn, c Config) (*Worker, error) {
	if nc == nil {
		return nil, fmt.Errorf("%w: no NATS connection", ErrBadConfig)
	}
	if c.Names.Prefix == "" {
		c.Names = c.Bus.Names
	}
	c.Bus.Names = c.Names
	c.Bus = c.Bus.WithDefaults()
	c.Names = c.Bus.Names
	if len(c.Kinds) == 0 {
		c.Kinds = sluicev1.AllKinds()
	}
	if c.Pool == "" {
		c.Pool = DefaultPool
	}
	if c.Concurrency == 0 {
		c.Concurrency = 1
	}
	if c.PoolCap == 0 {
		c.PoolCap = DefaultPoolCap
	}
	if c.PoolCap < 0 {
		return nil, fmt.Errorf("%w: pool cap %d must be >= 1", ErrBadConfig, c.PoolCap)
	}
	if c.Concurrency < 0 {
		return nil, fmt.Errorf("%w: concurrency %d must be >= 1", ErrBadConfig, c.Concurrency)
	}
	if c.Grace == 0 {
		c.Grace = DefaultGrace
	}
	if c.Grace < 0 {
		return nil, fmt.Errorf("%w: grace %s must not be negative", ErrBadConfig, c.Grace)
	}
	if c.StartedAfter == 0 {
		c.StartedAfter = DefaultStartedAfter
	}
	if c.ID == "" {
		host, _ := os.Hostname()
		c.ID = fmt.Sprintf("%s-%d", host, os.Getpid())
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Registry == nil {
		c.Registry = DefaultRegistry()
	}
	if c.StepUID == 0 {
		c.StepUID = DefaultStepUID
	}
	if c.StepUIDs == 0 {
		c.StepUIDs = DefaultStepUIDs
	}
	if c.StepUID < 1000 || c.StepUIDs < 2 {
		return nil, fmt.Errorf("%w: step uids %d+%d: the first must be 1000 or above (no system user) and the range hold at least 2", ErrBadConfig, c.StepUID, c.StepUIDs)
	}
	if c.CacheDir == "" {
		c.CacheDir = filepath.Join(os.TempDir(), "sluice", "cache")
	}
	if c.WorkDir == "" {
		c.WorkDir = filepath.Join(os.TempDir(), "sluice", "work")
	}
	// Steps run in other directories; a relative path would resolve against each of them.
	for _, dir := range []*string{&c.CacheDir, &c.WorkDir} {
		abs, err := filepath.Abs(*dir)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrBadConfig, *dir, err)
		}
		*dir = abs
	}
	handlers := make(map[sluicev1.StageKind]Handler)
	for _, k := range c.Kinds {
		if _, known := sluicev1.StageKind_name[int32(k)]; !known || k == sluicev1.StageKind_STAGE_KIND_UNSPECIFIED {
			return nil, fmt.Errorf("%w: unknown stage kind %d", ErrBadConfig, k)
		}
		h, ok := c.Registry.Handler(k)
		if !ok {
			return nil, fmt.Errorf("%w: no handler registered for kind %s", ErrBadConfig, k.Slug())
		}
		handlers[k] = h
	}
	id, err := workerIdentity(nc, c)
	if err != nil {
		return nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("jetstream context: %w", err)
	}
	m, err := newWorkerMetrics(c.Metrics, c)
	if err != nil {
		return nil, err
	}
	return &Worker{
		nc: nc, js: js, c: c, handlers: handlers, id: id, metrics: m,
		log:      c.Logger.With("worker", c.ID, "pool", c.Pool),
		inflight: make(map[*inflight]struct{}),
	}, nil
}

// workerIdentity is the identity results go out under. A worker with credentials must serve
// exactly its role's kind and one of its pools: the server would refuse anything else, task
// by task, so it is refused here, once, with what to do.
func workerIdentity(nc *nats.Conn, c Config) (bus.Identity, error) {
	id := bus.IdentityOf(nc)
	if id.Anonymous() {
		id.Name = bus.Tokenize(c.ID)
		return id, nil
	}
	for _, k := range c.Kinds {
		if id.Role != "worker-"+k.Slug() {
			return id, fmt.Errorf("%w: the credentials are those of %s, which may not serve kind %s: use worker-%s credentials (one connection per kind; `sluice worker --auth DIR` does it)",
				ErrBadConfig, id.Principal(), k.Slug(), k.Slug())
		}
	}
	if !slices.Contains(id.Pools, c.Pool) {
		return id, fmt.Errorf("%w: the credentials of %s serve pools %v, not %q: mint a user for it with `sluice auth add-user %s NAME --pools %s`",
			ErrBadConfig, id.Principal(), id.Pools, c.Pool, id.Role, c.Pool)
	}
	return id, nil
}

// Run serves tasks until ctx is done, then stops pulling at once, gives in-flight tasks
// Config.Grace to finish, and hands back (Nak) those that do not, killing their processes.
// It returns after every goroutine it started has ended: nil after a stop through ctx, or
// the error that made serving impossible.
func (w *Worker) Run(ctx context.Context) error {
	if err := w.open(ctx); err != nil {
		return err
	}
	if err := w.isolate(); err != nil {
		return err
	}
	defer w.uids.close()
	consumers := make(map[sluicev1.StageKind]jetstream.Consumer, len(w.handlers))
	for kind := range w.handlers {
		cons, err := bus.WorkerConsumer(ctx, w.js, w.c.Bus, kind.Slug(), w.c.Pool, w.c.PoolCap)
		if err != nil {
			return fmt.Errorf("worker %s: %w", w.c.ID, err)
		}
		consumers[kind] = cons
	}
	sub, err := w.nc.Subscribe(w.c.Names.AllCancels(), w.onCancel)
	if err != nil {
		return fmt.Errorf("subscribe to cancel signals on %s: %w", w.c.Names.AllCancels(), err)
	}

	pullCtx, stopPulling := context.WithCancelCause(ctx)
	defer stopPulling(nil)
	var slots sync.WaitGroup
	slot := 0
	for kind, cons := range consumers {
		// One goroutine per slot, each holding at most one task: never more than
		// Concurrency tasks of a kind at once, and no task waits in a local buffer. Each
		// slot runs its steps as its own user. One puller per kind asks for as many tasks as
		// slots are idle, so the server holds one pull request per kind, not one per slot.
		idle := make(chan struct{}, w.c.Concurrency)
		hand := make(chan jetstream.Msg)
		for range w.c.Concurrency {
			sb := w.uids.sandbox(slot)
			slot++
			slots.Go(func() { w.serve(pullCtx, kind, idle, hand, sb) })
		}
		slots.Go(func() { w.pull(pullCtx, stopPulling, kind, cons, idle, hand) })
	}
	w.log.Info("worker serving", "kinds", w.kindList(), "concurrency", w.c.Concurrency)
	var heartbeat sync.WaitGroup
	heartbeat.Go(func() { w.announce(pullCtx) })
	defer func() {
		stopPulling(nil)
		heartbeat.Wait()
	}()

	allDone := make(chan struct{})
	var reaper sync.WaitGroup
	reaper.Go(func() {
		select {
		case <-allDone:
			return
		case <-pullCtx.Done():
		}
		grace := time.NewTimer(w.c.Grace)
		defer grace.Stop()
		select {
		case <-allDone:
		case <-grace.C:
			w.handBackAll()
		}
	})
	slots.Wait()
	close(allDone)
	reaper.Wait()
	if err := sub.Unsubscribe(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		w.log.Warn("unsubscribe from cancel signals", "err", err)
	}
	if ctx.Err() != nil {
		w.log.Info("worker stopped")
		return nil
	}
	return context.Cause(pullCtx)
}

// open binds the object stores and prepares the local directories.
func (w *Worker) open(ctx context.Context) error {
	srcStore, err := w.js.ObjectStore(ctx, w.c.Names.SourcesStore())
	if err != nil {
		return fmt.Errorf("open object store %s (is the bus provisioned? start a coordinator or `sluice dev`): %w",
			w.c.Names.SourcesStore(), err)
	}
	w.artifacts, err = w.js.ObjectStore(ctx, w.c.Names.ArtifactsStore())
	if err != nil {
		return fmt.Errorf("open object store %s: %w", w.c.Names.ArtifactsStore(), err)
	}
	// The cache holds the source bundles: the worker's alone. Steps reach their own tree
	// below WorkDir, which they may cross but not list.
	// WorkDir first: parents it creates must be crossable too.
	for _, d := range []struct {
		path, what, flag string
		mode             os.FileMode
	}{{w.c.WorkDir, "work", "--work-dir", 0o711}, {w.c.CacheDir, "cache", "--cache-dir", 0o700}} {
		err := os.MkdirAll(d.path, d.mode)
		if err == nil {
			err = os.Chmod(d.path, d.mode)
		}
		if err != nil {
			return fmt.Errorf("the worker's %s directory %s: %w (move what is in the way, or choose another with %s)", d.what, d.path, err, d.flag)
		}
	}
	w.sources = &source.Cache{Dir: w.c.CacheDir, Store: srcStore, Limits: source.DefaultLimits()}
	return nil
}

func (w *Worker) kindList() string {
	var s []string
	for _, k := range w.c.Kinds {
		s = append(s, k.Slug())
	}
	return strings.Join(s, ",")
}

// pull fetches tasks of kind for the idle slots and hands each to one of them. Every fetch
// asks for no more tasks than slots are idle (a slot reports idle on idle, then takes a task
// from hand), so a task never waits on this worker for a slot. A connection that is closed
// for good stops the whole worker through fatal.
func (w *Worker) pull(ctx context.Context, fatal context.CancelCauseFunc, kind sluicev1.StageKind, cons jetstream.Consumer, idle <-chan struct{}, hand chan<- jetstream.Msg) {
	// A pull waits at most an ack wait: the pulls of a worker cut off the network (which the
	// server still counts as connected) expire before its task is redelivered, so the
	// redelivery goes to a worker that can run it rather than into the partition.
	wait := w.c.Bus.WithDefaults().AckWait
	free := 0
	for {
		if free == 0 {
			select {
			case <-ctx.Done():
				return
			case <-idle:
				free++
			}
		}
	more:
		for {
			select {
			case <-idle:
				free++
			default:
				break more
			}
		}
		// Checked before each pull: a pull request sent after the stop could be handed a
		// task (such as the one just handed back) that nobody then reads until AckWait.
		if ctx.Err() != nil {
			return
		}
		pctx, cancel := context.WithTimeout(ctx, wait)
		batch, err := cons.Fetch(free, jetstream.FetchContext(pctx))
		if err == nil {
			for msg := range batch.Messages() {
				select {
				case hand <- msg:
					free--
				case <-ctx.Done():
					// Pulled as the worker stopped: another worker takes it without waiting
					// for AckWait.
					w.nak(msg, w.log)
				}
			}
			err = batch.Error()
		}
		cancel()
		switch {
		case err == nil, ctx.Err() != nil:
		case errors.Is(err, nats.ErrTimeout), errors.Is(err, context.DeadlineExceeded):
			// The long poll expired with nothing (or less than asked) to do.
		case errors.Is(err, nats.ErrConnectionClosed):
			fatal(fmt.Errorf("pull %s tasks: %w", kind.Slug(), err))
			return
		default:
			w.log.Warn("pull tasks", "kind", kind.Slug(), "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(pullRetry):
			}
		}
	}
}

// serve runs the tasks pull hands it, one at a time, until ctx is done.
func (w *Worker) serve(ctx context.Context, kind sluicev1.StageKind, idle chan<- struct{}, hand <-chan jetstream.Msg, sb *exec.Sandbox) {
	for {
		// idle has room for every slot of the kind, and each slot reports once per task.
		idle <- struct{}{}
		select {
		case <-ctx.Done():
			return
		case msg := <-hand:
			if ctx.Err() != nil {
				w.nak(msg, w.log)
				return
			}
			w.process(ctx, kind, msg, sb)
		}
	}
}

// process runs one delivered task through STARTED (when it runs longer than
// StartedAfter) -> heartbeats -> final -> ack.
func (w *Worker) process(ctx context.Context, kind sluicev1.StageKind, msg jetstream.Msg, sb *exec.Sandbox) {
	task := &sluicev1.Task{}
	if err := decodeTask(msg.Data(), task); err != nil {
		w.log.Warn("terminating a task that does not decode", "subject", msg.Subject(), "err", err)
		if err := msg.TermWithReason("sluice worker: " + err.Error()); err != nil {
			w.log.Warn("terminate undecodable task", "subject", msg.Subject(), "err", err)
		}
		return
	}
	delivery := 1
	if meta, err := msg.Metadata(); err == nil {
		delivery = int(meta.NumDelivered)
	}
	log := w.log.With("run", task.GetRunId(), "stage", task.GetStage(), "attempt", task.GetAttempt(),
		"shard", task.GetShardIndex(), "delivery", delivery)

	var recorded *sluicev1.Result
	ended := w.metrics.took(task)
	defer func() { ended(recorded) }()

	// The task outlives ctx by up to Grace: it is cancelled by a cancel signal or the
	// hand-back, never directly by the worker's stop.
	tctx, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
	defer cancel(nil)
	defer w.track(task, cancel)()

	started := timestamppb.Now()
	startRes := &sluicev1.Result{
		RunId: task.GetRunId(), Stage: task.GetStage(), Attempt: task.GetAttempt(), ShardIndex: task.GetShardIndex(),
		RolloutSeq: task.GetRollout().GetSeq(),
		Phase:      sluicev1.ResultPhase_RESULT_PHASE_STARTED, Worker: w.c.ID,
		Delivery: int32(delivery), StartedAt: started,
	}
	var start *startReport
	if task.GetRollout() != nil {
		// A traffic shift does not begin unless its start is on record.
		f, err := w.sendResult(task, startRes)
		if err == nil {
			err = w.awaitResult(f)
		}
		if err != nil {
			log.Error("cannot record the task's start; retrying it later", "err", err)
			w.retryLater(msg, log)
			return
		}
		start = &startReport{}
	} else {
		start = w.reportStart(task, startRes, max(w.c.StartedAfter, 0))
	}
	defer start.stop()
	stopHeartbeat := w.heartbeat(msg, log)
	defer stopHeartbeat()

	res, dir := w.execute(tctx, kind, task, delivery, log, sb)
	// After the result is recorded and the task acked, off the stage's critical path (the
	// coordinator is waiting on it), and before the slot takes another task as this uid:
	// nothing a step started outlives the task, and its tree goes.
	defer func() {
		if n := sb.Sweep(); n > 0 {
			log.Info("killed what the task's steps left running", "processes", n)
		}
		if dir != "" {
			removeTree(dir, log)
		}
	}()
	if errors.Is(context.Cause(tctx), errHandBack) {
		stopHeartbeat()
		log.Info("handing the task back to the queue")
		w.nak(msg, log)
		return
	}
	res.RunId, res.Stage, res.Attempt, res.ShardIndex = task.GetRunId(), task.GetStage(), task.GetAttempt(), task.GetShardIndex()
	res.RolloutSeq = task.GetRollout().GetSeq()
	res.Phase = sluicev1.ResultPhase_RESULT_PHASE_FINAL
	res.Worker, res.Delivery = w.c.ID, int32(delivery)
	res.StartedAt, res.FinishedAt = started, timestamppb.Now()
	if f, err := start.stop(); err != nil {
		log.Warn("the task's start was not sent", "err", err)
	} else if f != nil {
		if err := w.awaitResult(f); err != nil {
			// The final result carries the start too; the coordinator records both.
			log.Warn("the task's start was not recorded", "err", err)
		}
	}
	if err := w.publishResult(task, res); err != nil {
		// Never ack without a recorded result: the task is retried.
		stopHeartbeat()
		log.Error("cannot record the final result; retrying the task later", "err", err)
		w.retryLater(msg, log)
		return
	}
	stopHeartbeat()
	recorded = res
	// A plain ack: the server's confirmation would cost a message and a wait per task, and
	// change nothing. The result is recorded; were the ack lost, a redelivery's final
	// result carries the same Nats-Msg-Id and is dropped as a duplicate.
	if err := msg.Ack(); err != nil {
		log.Warn("ack task after its final result", "err", err)
	}
	log.Info("task finished", "outcome", res.GetOutcome().Short(),
		"duration", res.FinishedAt.AsTime().Sub(started.AsTime()).Round(time.Millisecond))
}

// startReport is a task's STARTED result, sent once the task has run for a while; see
// Config.StartedAfter.
type startReport struct {
	timer *time.Timer // nil: nothing left to send
	mu    sync.Mutex
	ended bool
	f     jetstream.PubAckFuture
	err   error
}

// reportStart sends res for task after d unless stop comes first.
func (w *Worker) reportStart(task *sluicev1.Task, res *sluicev1.Result, d time.Duration) *startReport {
	s := &startReport{}
	s.timer = time.AfterFunc(d, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if !s.ended {
			s.f, s.err = w.sendResult(task, res)
		}
	})
	return s
}

// stop keeps a start not yet sent from being sent, and returns the publish of one that was
// (nil: none), for the caller to await before the final result. It may be called again.
func (s *startReport) stop() (jetstream.PubAckFuture, error) {
	if s.timer != nil {
		s.timer.Stop()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ended = true
	f, err := s.f, s.err
	s.f, s.err = nil, nil
	return f, err
}

// decodeTask decodes and checks the fields every later step relies on.
func decodeTask(data []byte, t *sluicev1.Task) error {
	if err := proto.Unmarshal(data, t); err != nil {
		return fmt.Errorf("undecodable task payload (%d bytes): %w", len(data), err)
	}
	if t.GetRunId() == "" || t.GetStage() == "" {
		return fmt.Errorf("task payload without run id or stage (%d bytes)", len(data))
	}
	return nil
}

// execute prepares the task's directories, environment, logs and source, runs the handler
// and returns its result, with cancellations and setup errors mapped to outcomes.
func (w *Worker) execute(ctx context.Context, kind sluicev1.StageKind, task *sluicev1.Task, delivery int, log *slog.Logger, sb *exec.Sandbox) (res *sluicev1.Result, dir string) {
	sink := newLogSink(w.js, w.c.Names, task, w.c.LogLimit)
	dir, err := os.MkdirTemp(w.c.WorkDir, taskDirPrefix(task))
	if err != nil {
		return w.closeLogs(sink, log, errorResult("create the task's work directory: %v", err)), ""
	}
	src, home, tmp := filepath.Join(dir, srcDir), filepath.Join(dir, homeDir), filepath.Join(dir, tmpDir)
	for _, d := range []string{home, tmp} {
		if err := os.Mkdir(d, 0o700); err != nil {
			return w.closeLogs(sink, log, errorResult("create the task's directories: %v", err)), dir
		}
	}
	granted, grantErr := w.c.Secrets.Grant(task)
	cacheHome, cacheErr := w.stepCache(task, sb)
	env, secrets, envErr := exec.TaskEnv(task, exec.EnvConfig{Path: os.Getenv("PATH"), Home: home, TmpDir: tmp, CacheHome: cacheHome, Secrets: granted})
	stdout := exec.NewRedactor(sink.writer(StreamStdout), secrets)
	stderr := exec.NewRedactor(sink.writer(StreamStderr), secrets)
	sluice := exec.NewRedactor(sink.writer(StreamSluice), secrets)
	defer func() {
		fmt.Fprintf(sluice, "%s: %s\n", res.GetOutcome().Short(), res.GetMessage())
		for _, r := range []*exec.Redactor{stdout, stderr, sluice} {
			if err := r.Close(); err != nil {
				log.Warn("flush task output", "err", err)
			}
		}
		res = w.closeLogs(sink, log, res)
		// Redaction covers what the result says, not only the logs.
		maskResult(res, secrets)
	}()
	defer func() { res = interrupted(ctx, res) }()

	fmt.Fprintf(sluice, "worker %s took the task (delivery %d)\n", w.c.ID, delivery)
	for _, err := range []error{grantErr, cacheErr, envErr} {
		if err != nil {
			return errorResult("%v", err), dir
		}
	}
	if task.GetKind() != kind {
		return errorResult("task of kind %s delivered to the %s consumer", task.GetKind().Slug(), kind.Slug()), dir
	}
	// The directories made above are empty: each is given to the step user with one
	// chown, and only a checked-out source is walked.
	made := []string{dir, home, tmp}
	if digest := task.GetSourceDigest(); digest != "" {
		if err := w.sources.Checkout(ctx, digest, src); err != nil {
			return errorResult("check out source %s: %v", digest, err), dir
		}
		fmt.Fprintf(sluice, "checked out source %s\n", digest)
		if err := sb.Own(src); err != nil {
			return errorResult("%v", err), dir
		}
	} else if err := os.Mkdir(src, 0o700); err != nil {
		return errorResult("create the task's source directory: %v", err), dir
	} else {
		made = append(made, src)
	}
	if err := sb.OwnNew(made...); err != nil {
		return errorResult("%v", err), dir
	}

	hctx := ctx
	if d := task.GetTimeout().AsDuration(); d > 0 {
		var cancel context.CancelFunc
		hctx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	}
	t := &Task{
		Task: task, Dir: src, Env: env, Stdout: stdout, Stderr: stderr, Log: sluice,
		Exec:   &exec.Runner{Dir: src, Env: env, Stdout: stdout, Stderr: stderr, Log: sluice, Sandbox: sb},
		Logger: log, Delivery: delivery, artifacts: w.artifacts, Sandbox: sb, TmpDir: tmp,
		artifactPrefix: artifactPrefix(task, delivery), secrets: granted, secretValues: secrets,
	}
	return callHandler(hctx, w.handlers[kind], t), dir
}

// interrupted maps a task stopped by a cancel signal to CANCELLED, whatever the handler made
// of its killed processes; a task that passed before the signal stays PASSED.
func interrupted(ctx context.Context, res *sluicev1.Result) *sluicev1.Result {
	cause := context.Cause(ctx)
	switch {
	case errors.Is(cause, errCancelSignal) && res.GetOutcome() != sluicev1.Outcome_OUTCOME_PASSED:
		res.Outcome = sluicev1.Outcome_OUTCOME_CANCELLED
		if res.Message == "" {
			res.Message = cause.Error()
		}
	case errors.Is(cause, errHandBack):
		res.Message = errHandBack.Error()
	}
	return res
}

// closeLogs waits for the task's log chunks to be stored. Lost logs do not change the
// outcome; the result says they are incomplete.
func (w *Worker) closeLogs(sink *logSink, log *slog.Logger, res *sluicev1.Result) *sluicev1.Result {
	ctx, cancel := context.WithTimeout(context.Background(), publishTimeout)
	defer cancel()
	err := sink.close(ctx)
	if err != nil {
		log.Warn("task logs incomplete", "err", err)
	}
	if err != nil || sink.dropped > 0 {
		if res.Detail == nil {
			res.Detail = make(map[string]string)
		}
		if err != nil {
			res.Detail["logs"] = err.Error()
		}
		if sink.dropped > 0 {
			res.Detail["logs_dropped_bytes"] = strconv.FormatInt(sink.dropped, 10)
		}
	}
	return res
}

// callHandler runs h; a panic in an engine fails the task instead of the worker.
func callHandler(ctx context.Context, h Handler, t *Task) (res *sluicev1.Result) {
	defer func() {
		if p := recover(); p != nil {
			t.Logger.Error("handler panicked", "panic", p, "stack", string(debug.Stack()))
			res = errorResult("%s handler panicked: %v", t.Task.GetKind().Slug(), p)
		}
	}()
	if res = h.Handle(ctx, t); res == nil {
		res = errorResult("%s handler returned no result", t.Task.GetKind().Slug())
	}
	return res
}

func errorResult(format string, args ...any) *sluicev1.Result {
	return &sluicev1.Result{Outcome: sluicev1.Outcome_OUTCOME_ERROR, Message: fmt.Sprintf(format, args...)}
}

// publishResult publishes res on the run's result subject and waits for the stream's ack.
// Its Nats-Msg-Id makes a republish after a crash or a redelivery a no-op.
func (w *Worker) publishResult(task *sluicev1.Task, res *sluicev1.Result) error {
	msg, err := w.resultMsg(task, res)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), publishTimeout)
	defer cancel()
	if _, err := w.js.PublishMsg(ctx, msg, jetstream.WithExpectStream(w.c.Names.ResultsStream())); err != nil {
		return fmt.Errorf("publish result %s: %w", msg.Header.Get(jetstream.MsgIDHeader), err)
	}
	return nil
}

// sendResult starts publishing res; awaitResult waits for the stream's ack. A task's
// start goes out this way and runs beside the step, the ack awaited before the final
// result: one round trip less per stage.
func (w *Worker) sendResult(task *sluicev1.Task, res *sluicev1.Result) (jetstream.PubAckFuture, error) {
	msg, err := w.resultMsg(task, res)
	if err != nil {
		return nil, err
	}
	f, err := w.js.PublishMsgAsync(msg, jetstream.WithExpectStream(w.c.Names.ResultsStream()))
	if err != nil {
		return nil, fmt.Errorf("publish result %s: %w", msg.Header.Get(jetstream.MsgIDHeader), err)
	}
	return f, nil
}

// resultMsg is res on the run's result subject, with the proof that it comes from the
// task's holder (without it the coordinator drops the result).
func (w *Worker) resultMsg(task *sluicev1.Task, res *sluicev1.Result) (*nats.Msg, error) {
	phase := "started"
	if res.GetPhase() == sluicev1.ResultPhase_RESULT_PHASE_FINAL {
		phase = "final"
	}
	fitResult(res, int(w.nc.MaxPayload())-resultHeadroom)
	data, err := proto.Marshal(res)
	if err != nil {
		return nil, fmt.Errorf("encode %s result: %w", phase, err)
	}
	msg := &nats.Msg{Subject: w.c.Names.Result(task.GetRunId(), w.id), Header: bus.TaskHeader(task, 2), Data: data}
	msg.Header.Set(jetstream.MsgIDHeader, bus.ResultMsgID(bus.TaskID(task), phase))
	msg.Header.Set(bus.HeaderProof, bus.Prove(task.GetLease(), data))
	return msg, nil
}

func (w *Worker) awaitResult(f jetstream.PubAckFuture) error {
	timer := time.NewTimer(publishTimeout)
	defer timer.Stop()
	select {
	case <-f.Ok():
		return nil
	case err := <-f.Err():
		return fmt.Errorf("publish result %s: %w", f.Msg().Header.Get(jetstream.MsgIDHeader), err)
	case <-timer.C:
		return fmt.Errorf("publish result %s: no ack within %s", f.Msg().Header.Get(jetstream.MsgIDHeader), publishTimeout)
	}
}

// heartbeat tells the server every AckWait/3 that the task is still being worked on, so it
// is not redelivered while this worker holds it. stop ends it and may be called again.
func (w *Worker) heartbeat(msg jetstream.Msg, log *slog.Logger) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(w.c.Bus.AckWait / 3)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				if err := msg.InProgress(); err != nil {
					log.Warn("heartbeat", "err", err)
				}
			}
		}
	})
	return func() {
		cancel()
		wg.Wait()
	}
}

// retryLater hands a task back after AckWait: the results stream is unreachable, and an
// immediate redelivery would only burn the task's deliveries against the same outage.
func (w *Worker) retryLater(msg jetstream.Msg, log *slog.Logger) {
	if err := msg.NakWithDelay(w.c.Bus.AckWait); err != nil {
		log.Warn("hand the task back (it returns after AckWait)", "subject", msg.Subject(), "err", err)
	}
}

func (w *Worker) nak(msg jetstream.Msg, log *slog.Logger) {
	if err := msg.Nak(); err != nil {
		log.Warn("hand the task back (it returns after AckWait)", "subject", msg.Subject(), "err", err)
	}
}

// track registers a running task for cancel signals and the hand-back, and cancels it at
// once if either came before it. The returned func unregisters it.
func (w *Worker) track(task *sluicev1.Task, cancel context.CancelCauseFunc) (untrack func()) {
	f := &inflight{task: task, cancel: cancel}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.inflight[f] = struct{}{}
	switch {
	case w.handingBack:
		cancel(errHandBack)
	default:
		for _, rc := range w.cancels {
			if cancelMatches(rc.sig, task) {
				cancel(cancelCause(rc.sig))
				break
			}
		}
	}
	return func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		delete(w.inflight, f)
	}
}

// handBackAll cancels every in-flight task so that it is handed back, and every later one.
func (w *Worker) handBackAll() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.handingBack = true
	for f := range w.inflight {
		f.cancel(errHandBack)
	}
	if n := len(w.inflight); n > 0 {
		w.log.Warn("grace period over; killing and handing back in-flight tasks", "tasks", n, "grace", w.c.Grace)
	}
}

// onCancel handles a sluicev1.CancelSignal: the matching in-flight tasks are cancelled, and
// the signal is remembered for tasks of the run pulled shortly after it.
func (w *Worker) onCancel(m *nats.Msg) {
	sig := &sluicev1.CancelSignal{}
	if err := proto.Unmarshal(m.Data, sig); err != nil {
		w.log.Warn("ignoring a cancel signal that does not decode", "subject", m.Subject, "err", err)
		return
	}
	if sig.RunId == "" {
		sig.RunId = m.Subject[strings.LastIndexByte(m.Subject, '.')+1:]
	}
	now := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	kept := w.cancels[:0]
	for _, rc := range w.cancels {
		if now.Sub(rc.at) < cancelMemory {
			kept = append(kept, rc)
		}
	}
	w.cancels = append(kept, rememberedCancel{sig: sig, at: now})
	for f := range w.inflight {
		if cancelMatches(sig, f.task) {
			w.log.Info("cancelling task", "run", f.task.GetRunId(), "stage", f.task.GetStage(), "reason", sig.GetReason())
			f.cancel(cancelCause(sig))
		}
	}
}

// cancelMatches: an empty stage cancels every stage of the run; attempt 0 every attempt.
func cancelMatches(sig *sluicev1.CancelSignal, t *sluicev1.Task) bool {
	if sig.GetRunId() != t.GetRunId() {
		return false
	}
	if sig.GetStage() == "" {
		return true
	}
	return sig.GetStage() == t.GetStage() && (sig.GetAttempt() == 0 || sig.GetAttempt() == t.GetAttempt()) &&
		(sig.GetRolloutSeq() == 0 || sig.GetRolloutSeq() == t.GetRollout().GetSeq())
}

func cancelCause(sig *sluicev1.CancelSignal) error {
	if r := sig.GetReason(); r != "" {
		return fmt.Errorf("%w: %s", errCancelSignal, r)
	}
	return errCancelSignal
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// taskDirPrefix names a task's work directory after the task, for whoever looks at the disk.
func taskDirPrefix(t *sluicev1.Task) string {
	name := fmt.Sprintf("%s-%s-%d-%d-", t.GetRunId(), t.GetStage(), t.GetAttempt(), t.GetShardIndex())
	return unsafeName.ReplaceAllString(name, "_")
}

// The directories of a task's tree: its source checkout, HOME and TMPDIR.
const (
	srcDir  = "src"
	homeDir = "home"
	tmpDir  = "tmp"
)

// rmdirs removes empty directories in order, stopping at the first it cannot.
func rmdirs(dirs ...string) bool {
	for _, d := range dirs {
		if syscall.Rmdir(d) != nil {
			return false
		}
	}
	return true
}

// removeTree deletes a task's directory, including the read-only directories tools leave
// behind (the Go module cache in the task's HOME).
func removeTree(dir string, log *slog.Logger) {
	// A tree the task left as it was made is four empty directories: four rmdirs, where
	// RemoveAll opens and reads each. The first that fails hands the rest to RemoveAll.
	if rmdirs(filepath.Join(dir, srcDir), filepath.Join(dir, homeDir), filepath.Join(dir, tmpDir), dir) {
		return
	}
	if err := os.RemoveAll(dir); err == nil {
		return
	}
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			_ = os.Chmod(p, 0o700)
		}
		return nil
	})
	if err := os.RemoveAll(dir); err != nil {
		log.Warn("remove the task's work directory", "dir", dir, "err", err)
	}
}
