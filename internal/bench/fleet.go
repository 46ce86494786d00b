package bench

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluice-ci/sluice/coordinator"
	"github.com/sluice-ci/sluice/internal/bus"
	sluicev1 "github.com/sluice-ci/sluice/proto/sluice/v1"
	"github.com/sluice-ci/sluice/workers"
)

// runTimeout bounds the wait for one run: a run that never ends fails the phase rather than
// hanging the benchmark.
const runTimeout = time.Minute

// InProcess starts the coordinator in this process, on a connection of its own. Its memory
// cannot be told apart from the benchmark's.
func InProcess(ctx context.Context, url, creds string, names bus.Names, log *slog.Logger) (Coordinator, error) {
	nc, err := bus.Connect(ctx, bus.ConnectOptions{URL: url, CredsFile: creds, Name: "sluice bench coordinator"})
	if err != nil {
		return nil, err
	}
	c, err := coordinator.New(nc, coordinator.Config{Names: names, Bus: bus.Config{Names: names}.WithDefaults(), Logger: log})
	if err != nil {
		nc.Close()
		return nil, err
	}
	cctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	p := &inProcess{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		p.err = c.Run(cctx)
		nc.Close()
	}()
	return p, nil
}

var errNoRSS = errors.New("the coordinator runs in this process")

type inProcess struct {
	cancel context.CancelFunc
	done   chan struct{}
	err    error // set before done closes
}

func (p *inProcess) RSS() (int64, error)   { return 0, errNoRSS }
func (p *inProcess) Done() <-chan struct{} { return p.done }

func (p *inProcess) Stop() error {
	p.cancel()
	<-p.done
	return p.err
}

// recorder is the no-op handler: it passes at once and records how long each task took from
// the coordinator's decision to the worker holding it.
type recorder struct {
	mu  sync.Mutex
	lat Latencies
}

func (r *recorder) Handle(_ context.Context, t *workers.Task) *sluicev1.Result {
	d := time.Since(t.Task.GetDispatchedAt().AsTime())
	r.mu.Lock()
	r.lat = append(r.lat, d)
	r.mu.Unlock()
	return &sluicev1.Result{Outcome: sluicev1.Outcome_OUTCOME_PASSED}
}

// take returns the Latencies recorded since the last take.
func (r *recorder) take() Latencies {
	r.mu.Lock()
	defer r.mu.Unlock()
	l := r.lat
	r.lat = nil
	return l
}

// fleet is the coordinator under test, a worker of no-op static tasks, a worker that runs
// test-kind tasks' steps for real, and a client.
type fleet struct {
	coord    Coordinator
	client   *coordinator.Client
	waiter   *waitRuns
	rec      *recorder
	isolated bool
	runs     int
	// readyIn is how long the coordinator took to answer the run API.
	readyIn time.Duration
	stops   []func()
	// failed ends, with the error as its cause, when a worker or the coordinator stops on
	// its own: the runs waiting on it would otherwise only time out.
	failed context.Context
	fail   context.CancelCauseFunc
}

func startFleet(ctx context.Context, s *server, o Options, work string) (*fleet, error) {
	f := &fleet{rec: &recorder{}, isolated: os.Geteuid() == 0}
	f.failed, f.fail = context.WithCancelCause(context.Background())
	ok := false
	defer func() {
		if !ok {
			f.stop()
		}
	}()
	coord, err := o.Coordinator(ctx, s.url, s.creds, s.names, o.Logger)
	if err != nil {
		return nil, fmt.Errorf("start the coordinator: %w", err)
	}
	f.coord = coord
	// Ends with the coordinator, which f.stop always stops.
	go func() {
		<-coord.Done()
		f.fail(errors.New("the coordinator stopped"))
	}()
	f.stops = append(f.stops, func() {
		if err := coord.Stop(); err != nil {
			o.Logger.Warn("coordinator stopped", "err", err)
		}
	})
	f.client = coordinator.NewClient(s.nc, s.names)
	started := time.Now()
	if err := f.ready(ctx); err != nil {
		return nil, err
	}
	f.readyIn = time.Since(started)
	noop := workers.NewRegistry()
	noop.Register(sluicev1.StageKind_STAGE_KIND_STATIC, f.rec)
	run := workers.NewRegistry()
	run.Register(sluicev1.StageKind_STAGE_KIND_TEST, workers.RunHandler{})
	for i, w := range []struct {
		reg   *workers.Registry
		kind  sluicev1.StageKind
		slots int
	}{
		{noop, sluicev1.StageKind_STAGE_KIND_STATIC, workerSlots},
		{run, sluicev1.StageKind_STAGE_KIND_TEST, 2},
	} {
		dir := filepath.Join(work, fmt.Sprintf("worker-%d", i))
		if err := f.startWorker(ctx, s, o, dir, w.reg, w.kind, w.slots); err != nil {
			return nil, err
		}
	}
	w, err := newWaitRuns(s.nc, s.names.Prefix+".event.*.*.run.>")
	if err != nil {
		return nil, err
	}
	f.waiter = w
	f.stops = append(f.stops, func() { _ = w.sub.Unsubscribe() })
	ok = true
	return f, nil
}

// ready waits until the coordinator answers the run API.
func (f *fleet) ready(ctx context.Context) error {
	// Long enough for a coordinator to load a bucket of many finished runs.
	deadline := time.Now().Add(2 * time.Minute)
	for {
		_, err := f.client.List(ctx, &sluicev1.ListRunsRequest{Limit: 1})
		if err == nil {
			return nil
		}
		if cause := context.Cause(f.failed); cause != nil {
			return cause
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("the coordinator never answered the run API: %w", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (f *fleet) startWorker(ctx context.Context, s *server, o Options, dir string, reg *workers.Registry, kind sluicev1.StageKind, slots int) error {
	nc, err := bus.Connect(ctx, bus.ConnectOptions{URL: s.url, CredsFile: s.creds, Name: "sluice bench worker"})
	if err != nil {
		return err
	}
	w, err := workers.New(nc, workers.Config{
		Bus: bus.Config{Names: s.names}.WithDefaults(), Kinds: []sluicev1.StageKind{kind}, Registry: reg,
		Concurrency: slots, PoolCap: slots, Logger: o.Logger,
		WorkDir: filepath.Join(dir, "work"), CacheDir: filepath.Join(dir, "cache"),
		UnsafeSharedUser: !f.isolated,
	})
	if err != nil {
		nc.Close()
		return fmt.Errorf("worker: %w", err)
	}
	wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		if err := w.Run(wctx); wctx.Err() == nil {
			f.fail(fmt.Errorf("worker of %s tasks stopped: %w", kind.Slug(), err))
		}
	}()
	f.stops = append(f.stops, func() {
		cancel()
		<-stopped
		nc.Close()
	})
	return nil
}

func (f *fleet) stop() {
	for i := len(f.stops) - 1; i >= 0; i-- {
		f.stops[i]()
	}
	f.stops = nil
}

// submit submits spec and waits for the run to end.
func (f *fleet) submit(ctx context.Context, spec *sluicev1.PipelineSpec) error {
	ctx, cancel := context.WithTimeoutCause(ctx, runTimeout, errors.New("the run did not end within "+runTimeout.String()))
	defer cancel()
	stop := context.AfterFunc(f.failed, cancel)
	defer stop()
	st, err := f.client.Submit(ctx, &sluicev1.SubmitRunRequest{Spec: spec})
	if err != nil {
		return fmt.Errorf("submit: %w", err)
	}
	if err := f.waiter.wait(ctx, st.GetId()); err != nil {
		if cause := context.Cause(f.failed); cause != nil {
			return cause
		}
		return err
	}
	return nil
}

type sustained struct {
	stagesPerS float64
	dispatch   Latencies
}

// sustain keeps inflight runs of a no-op chain of the given length going until runs have
// ended: each of inflight submitters submits a run and waits for its end, again and again.
func (f *fleet) sustain(ctx context.Context, stages, runs, inflight int) (sustained, error) {
	spec := noopSpec(stages, sluicev1.StageKind_STAGE_KIND_STATIC)
	f.rec.take()
	elapsed, err := keepGoing(ctx, runs, inflight, func(ctx context.Context) error { return f.submit(ctx, spec) })
	if err != nil {
		return sustained{}, err
	}
	f.runs += runs
	return sustained{stagesPerS: float64(stages*runs) / elapsed.Seconds(), dispatch: f.rec.take()}, nil
}

// keepGoing calls run runs times, inflight calls at a time, and returns how long they took
// all together; the first error stops it.
func keepGoing(ctx context.Context, runs, inflight int, run func(context.Context) error) (time.Duration, error) {
	var next atomic.Int64
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	start := time.Now()
	for range min(inflight, runs) {
		wg.Go(func() {
			for next.Add(1) <= int64(runs) {
				if err := run(ctx); err != nil {
					cancel(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

// sequential runs spec n times, one at a time, and times each from submit to its end.
func (f *fleet) sequential(ctx context.Context, spec *sluicev1.PipelineSpec, n int) (Latencies, error) {
	return timeEach(ctx, n, func(ctx context.Context) error {
		if err := f.submit(ctx, spec); err != nil {
			return err
		}
		f.runs++
		return nil
	})
}

// timeEach calls run n times, one after the other, and times each call.
func timeEach(ctx context.Context, n int, run func(context.Context) error) (Latencies, error) {
	lat := make(Latencies, 0, n)
	for range n {
		t := time.Now()
		if err := run(ctx); err != nil {
			return nil, err
		}
		lat = append(lat, time.Since(t))
	}
	return lat, nil
}

// execPhase alternates 1-stage runs of the no-op handler and of a real `true` step.
func (f *fleet) execPhase(ctx context.Context, n int) (noop, exec Latencies, err error) {
	noopRun := noopSpec(1, sluicev1.StageKind_STAGE_KIND_STATIC)
	execRun := noopSpec(1, sluicev1.StageKind_STAGE_KIND_TEST)
	for range n {
		for _, r := range []struct {
			spec *sluicev1.PipelineSpec
			lat  *Latencies
		}{{noopRun, &noop}, {execRun, &exec}} {
			l, err := f.sequential(ctx, r.spec, 1)
			if err != nil {
				return nil, nil, err
			}
			*r.lat = append(*r.lat, l...)
		}
	}
	return noop, exec, nil
}

// noopSpec is a chain of stages of kind whose step is `true`: the no-op handler never runs
// it, the test kind's worker does.
func noopSpec(stages int, kind sluicev1.StageKind) *sluicev1.PipelineSpec {
	p := &sluicev1.PipelineSpec{Version: 1, Name: "bench"}
	for i := range stages {
		s := &sluicev1.StageSpec{Name: fmt.Sprintf("s%d", i), Kind: kind, Shards: 1, Run: []string{"true"}}
		if i > 0 {
			s.Needs = []string{fmt.Sprintf("s%d", i-1)}
		}
		p.Stages = append(p.Stages, s)
	}
	return p
}
