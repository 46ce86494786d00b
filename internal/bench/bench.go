// Package bench measures Sluice beside the floor it cannot beat, on one server in one run:
// a synchronous JetStream publish and a raw task -> result round trip; the protocol floor,
// the same runs as Sluice's with its messages and none of its logic (protocol.go); then
// runs through a real coordinator and a real worker whose handler passes at once (so what
// is measured is Sluice, not a step), and a real `true` step for the cost of executing one. `sluice bench`
// prints it; the Go benchmarks of the coordinator call the same phases.
package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluice-ci/sluice/coordinator/spec"
	"github.com/sluice-ci/sluice/internal/bus"
	sluicev1 "github.com/sluice-ci/sluice/proto/sluice/v1"
)

// Defaults of Options.
const (
	DefaultRuns       = 10000
	DefaultInFlight   = 100
	DefaultSequential = 200
	// DefaultBigRun is the stages of the big run: the most one pipeline may have.
	DefaultBigRun = spec.MaxStages
	// floorSamples is how many publishes and round trips the floor takes.
	floorSamples = 3000
	// workerSlots is the no-op worker's concurrency: above any in-flight setting, so no
	// task waits for a slot.
	workerSlots = 256
)

// Options configures a run of the benchmark.
type Options struct {
	// NATS is the server's URL; empty starts an embedded server with a file store in a
	// temporary directory, removed afterwards.
	NATS  string
	Creds string
	// Runs is the number of 1-stage runs of the dispatch phase; the chain phase runs
	// Runs/7 chains of 7, the same number of stages.
	Runs int
	// InFlight is how many runs are kept going at once in those two phases.
	InFlight int
	// Sequential is the number of runs, one at a time, of the 7-stage DAG and exec phases.
	Sequential int
	// Finished is how many finished runs the runs bucket holds before the coordinator
	// starts (0: none), to see whether they slow it.
	Finished int
	// BigRun is the stages of the run timed with 1-stage runs beside it; default
	// DefaultBigRun, negative: no such phase.
	BigRun int
	// WorkDir holds the worker's task trees; default a directory on tmpfs (/dev/shm) when
	// there is one, so the phases measure Sluice rather than the disk's mkdir.
	WorkDir string
	// Coordinator starts the coordinator under test; default InProcess.
	Coordinator Starter
	// Progress receives a line as each phase starts and ends; nil: none.
	Progress io.Writer
	Logger   *slog.Logger
}

func (o Options) withDefaults() Options {
	if o.Runs <= 0 {
		o.Runs = DefaultRuns
	}
	if o.InFlight <= 0 {
		o.InFlight = DefaultInFlight
	}
	if o.Sequential <= 0 {
		o.Sequential = DefaultSequential
	}
	if o.BigRun == 0 {
		o.BigRun = DefaultBigRun
	}
	if o.Coordinator == nil {
		o.Coordinator = InProcess
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// Starter starts a coordinator on the server at url under the subject prefix of names.
type Starter func(ctx context.Context, url, creds string, names bus.Names, log *slog.Logger) (Coordinator, error)

// Coordinator is a coordinator the benchmark started.
type Coordinator interface {
	// RSS is its resident memory in bytes; an error when it cannot be told apart from the
	// benchmark's own process.
	RSS() (int64, error)
	// Done is closed once it has ended, whether through Stop or on its own.
	Done() <-chan struct{}
	// Stop ends it and returns once it has.
	Stop() error
}

// Report is one run's numbers; the JSON keys are what `sluice bench --json` prints.
type Report struct {
	Machine string `json:"machine"`
	Server  string `json:"server"`
	WorkDir string `json:"work_dir"`
	// StepsIsolated: the exec phase's step ran as a user of its own in a PID namespace.
	StepsIsolated bool `json:"steps_isolated"`

	FloorPublishP50Us   float64 `json:"floor_publish_p50_us"`
	FloorPublishP99Us   float64 `json:"floor_publish_p99_us"`
	FloorRoundtripP50Us float64 `json:"floor_roundtrip_p50_us"`
	FloorRoundtripP99Us float64 `json:"floor_roundtrip_p99_us"`
	// The protocol floor: the runs below with Sluice's messages and none of its logic
	// (protocol.go), the same number of each.
	ProtocolStagesPerS      float64 `json:"protocol_stages_per_s"`
	ProtocolChainStagesPerS float64 `json:"protocol_chain_stages_per_s"`
	ProtocolDAG7P50Us       float64 `json:"protocol_dag7_p50_us"`

	// 1-stage runs, InFlight at once: decision -> worker holds the task.
	DispatchP50Us float64 `json:"dispatch_p50_us"`
	DispatchP99Us float64 `json:"dispatch_p99_us"`
	StagesPerS    float64 `json:"stages_per_s"`
	// 7-stage chains, InFlight at once.
	ChainStagesPerS    float64 `json:"chain_stages_per_s"`
	ChainDispatchP50Us float64 `json:"chain_dispatch_p50_us"`
	ChainDispatchP99Us float64 `json:"chain_dispatch_p99_us"`
	// One 7-stage chain at a time, submit -> run.passed.
	DAG7P50Us float64 `json:"dag7_p50_us"`
	DAG7P99Us float64 `json:"dag7_p99_us"`
	// DAG7FloorRoundtripP50Us is the floor's round trip timed between the dag7 runs, seven
	// before each: the host at the moment the chain ran, which a busy one changes by half
	// within a minute.
	DAG7FloorRoundtripP50Us float64 `json:"dag7_floor_roundtrip_p50_us"`
	// OverheadXFloor is the time per stage of the 7-stage chain over the floor round trip
	// timed beside it.
	OverheadXFloor float64 `json:"overhead_x_floor"`
	// One 1-stage run at a time: a no-op handler, then a real `run: ["true"]` step.
	NoopRunP50Us   float64 `json:"noop_run_p50_us"`
	ExecRunP50Us   float64 `json:"exec_run_p50_us"`
	ExecOverheadUs float64 `json:"exec_overhead_us"`

	// Scale: the coordinator's start with FinishedRuns finished runs stored, and 1-stage
	// runs one at a time beside a run of BigRunStages stages (against NoopRunP50Us alone).
	FinishedRuns       int     `json:"finished_runs"`
	CoordinatorReadyMs float64 `json:"coordinator_ready_ms"`
	BigRunStages       int     `json:"big_run_stages,omitempty"`
	BigRunS            float64 `json:"big_run_s,omitempty"`
	BesideBigRunRuns   int     `json:"beside_big_run_runs,omitempty"`
	BesideBigRunP50Us  float64 `json:"beside_big_run_p50_us,omitempty"`
	BesideBigRunP99Us  float64 `json:"beside_big_run_p99_us,omitempty"`

	CoordinatorRSSMB float64 `json:"coordinator_rss_mb"`
	Runs             int     `json:"runs"`
	DurationS        float64 `json:"duration_s"`
}

// Run runs every phase and reports. ctx bounds it all.
func Run(ctx context.Context, o Options) (*Report, error) {
	o = o.withDefaults()
	start := time.Now()
	rep := &Report{Machine: Machine()}
	srv, err := openServer(ctx, o, rep)
	if err != nil {
		return nil, err
	}
	defer srv.close()

	if err := floor(ctx, srv, o, rep); err != nil {
		return nil, err
	}
	if err := protocolFloor(ctx, srv, o, rep); err != nil {
		return nil, fmt.Errorf("protocol floor: %w", err)
	}
	work, cleanup, err := workDir(o.WorkDir)
	if err != nil {
		return nil, err
	}
	defer cleanup()
	rep.WorkDir = work
	if o.Finished > 0 {
		phase(o, "scale: writing %d finished runs into the runs bucket", o.Finished)
		if err := prefill(ctx, srv, o.Finished, func(format string, args ...any) { phase(o, format, args...) }); err != nil {
			return nil, fmt.Errorf("prefill: %w", err)
		}
		rep.FinishedRuns = o.Finished
	}
	f, err := startFleet(ctx, srv, o, work)
	if err != nil {
		return nil, err
	}
	defer f.stop()
	rep.StepsIsolated = f.isolated
	rep.CoordinatorReadyMs = float64(f.readyIn.Microseconds()) / 1e3
	if o.Finished > 0 {
		if err := f.holdsFinished(ctx, o.Finished); err != nil {
			return nil, err
		}
	}
	phase(o, "  the coordinator answered %.0f ms after it started, with %d finished runs stored", rep.CoordinatorReadyMs, rep.FinishedRuns)

	// The first runs meet workers whose pulls are not all waiting yet, and cold caches;
	// they are not measured.
	warm := min(o.InFlight, o.Runs)
	phase(o, "warm-up: %d 1-stage runs, not measured", warm)
	if _, err := f.sustain(ctx, 1, warm, o.InFlight); err != nil {
		return nil, fmt.Errorf("warm-up: %w", err)
	}

	phase(o, "dispatch: %d 1-stage runs, %d in flight", o.Runs, o.InFlight)
	s, err := f.sustain(ctx, 1, o.Runs, o.InFlight)
	if err != nil {
		return nil, fmt.Errorf("dispatch phase: %w", err)
	}
	rep.StagesPerS, rep.DispatchP50Us, rep.DispatchP99Us = s.stagesPerS, s.dispatch.P(0.5), s.dispatch.P(0.99)
	phase(o, "  %.0f stages/s, dispatch p50 %.0f us, p99 %.0f us", rep.StagesPerS, rep.DispatchP50Us, rep.DispatchP99Us)

	chains := max(1, o.Runs/7)
	phase(o, "chains: %d 7-stage runs, %d in flight", chains, o.InFlight)
	s, err = f.sustain(ctx, 7, chains, o.InFlight)
	if err != nil {
		return nil, fmt.Errorf("chain phase: %w", err)
	}
	rep.ChainStagesPerS, rep.ChainDispatchP50Us, rep.ChainDispatchP99Us = s.stagesPerS, s.dispatch.P(0.5), s.dispatch.P(0.99)
	phase(o, "  %.0f stages/s, dispatch p50 %.0f us, p99 %.0f us", rep.ChainStagesPerS, rep.ChainDispatchP50Us, rep.ChainDispatchP99Us)

	phase(o, "dag7: %d 7-stage runs, one at a time, each after 7 floor round trips", o.Sequential)
	lat, beside, err := dag7(ctx, srv, f, o.Sequential)
	if err != nil {
		return nil, fmt.Errorf("dag7 phase: %w", err)
	}
	rep.DAG7P50Us, rep.DAG7P99Us, rep.DAG7FloorRoundtripP50Us = lat.P(0.5), lat.P(0.99), beside.P(0.5)
	if rep.DAG7FloorRoundtripP50Us > 0 {
		rep.OverheadXFloor = rep.DAG7P50Us / 7 / rep.DAG7FloorRoundtripP50Us
	}
	phase(o, "  p50 %.0f us, p99 %.0f us; floor round trip beside it p50 %.0f us (%.1fx the floor per stage)",
		rep.DAG7P50Us, rep.DAG7P99Us, rep.DAG7FloorRoundtripP50Us, rep.OverheadXFloor)

	phase(o, "exec: %d 1-stage runs each of a no-op and of a `true` step, one at a time", o.Sequential)
	noop, exec, err := f.execPhase(ctx, o.Sequential)
	if err != nil {
		return nil, fmt.Errorf("exec phase: %w", err)
	}
	rep.NoopRunP50Us, rep.ExecRunP50Us = noop.P(0.5), exec.P(0.5)
	rep.ExecOverheadUs = rep.ExecRunP50Us - rep.NoopRunP50Us
	phase(o, "  no-op p50 %.0f us, `true` p50 %.0f us: %.0f us to run a step", rep.NoopRunP50Us, rep.ExecRunP50Us, rep.ExecOverheadUs)

	if o.BigRun > 0 {
		phase(o, "big run: one run of %d independent stages, 1-stage runs one at a time beside it", o.BigRun)
		took, beside, err := f.bigRun(ctx, o.BigRun)
		if err != nil {
			return nil, fmt.Errorf("big run phase: %w", err)
		}
		rep.BigRunStages, rep.BigRunS, rep.BesideBigRunRuns = o.BigRun, took.Seconds(), len(beside)
		rep.BesideBigRunP50Us, rep.BesideBigRunP99Us = beside.P(0.5), beside.P(0.99)
		phase(o, "  %.1f s; %d 1-stage runs beside it, p50 %.0f us, p99 %.0f us (alone: p50 %.0f us)",
			rep.BigRunS, len(beside), rep.BesideBigRunP50Us, rep.BesideBigRunP99Us, rep.NoopRunP50Us)
	}

	rep.Runs = f.runs
	if rss, err := f.coord.RSS(); err == nil {
		rep.CoordinatorRSSMB = float64(rss) / (1 << 20)
	} else {
		phase(o, "coordinator RSS not measured: %v", err)
	}
	rep.DurationS = time.Since(start).Seconds()
	return rep, nil
}

func phase(o Options, format string, args ...any) {
	fmt.Fprintf(o.Progress, format+"\n", args...)
}

// Machine names the CPU and its cores, as /proc/cpuinfo tells them.
func Machine() string {
	model := runtime.GOARCH
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	return fmt.Sprintf("%s, %d cores, %s/%s", model, runtime.NumCPU(), runtime.GOOS, runtime.GOARCH)
}

// dag7 runs n 7-stage chains one at a time, each after seven of the floor's round trips,
// so the chain and the floor it is measured against see the host in the same state.
func dag7(ctx context.Context, s *server, f *fleet, n int) (runs, floor Latencies, err error) {
	rt, err := startRoundTrips(ctx, s.js, s.names.Prefix)
	if err != nil {
		return nil, nil, err
	}
	defer rt.stop()
	spec := noopSpec(7, sluicev1.StageKind_STAGE_KIND_STATIC)
	for range n {
		l, err := rt.measure(ctx, 7)
		if err != nil {
			return nil, nil, err
		}
		floor = append(floor, l...)
		r, err := f.sequential(ctx, spec, 1)
		if err != nil {
			return nil, nil, err
		}
		runs = append(runs, r...)
	}
	return runs, floor, nil
}

// workDir is dir, or a fresh directory on tmpfs when there is one, else in the temp dir.
// Step users must cross it (mode 0711).
func workDir(dir string) (string, func(), error) {
	if dir != "" {
		return dir, func() {}, nil
	}
	base := ""
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		base = "/dev/shm"
	}
	d, err := os.MkdirTemp(base, "sluice-bench-work-")
	if err != nil {
		return "", nil, fmt.Errorf("work dir: %w", err)
	}
	if err := os.Chmod(d, 0o711); err != nil {
		return "", nil, fmt.Errorf("work dir: %w", err)
	}
	return d, func() { _ = os.RemoveAll(d) }, nil
}

// Latencies is a sample of durations.
type Latencies []time.Duration

// P is the q-quantile in microseconds (0 without samples).
func (l Latencies) P(q float64) float64 {
	if len(l) == 0 {
		return 0
	}
	s := slices.Clone(l)
	slices.Sort(s)
	return float64(s[int(q*float64(len(s)-1))].Nanoseconds()) / 1e3
}

// server is the server the phases run on, with the benchmark's own connection.
type server struct {
	url      string
	creds    string
	nc       *nats.Conn
	js       jetstream.JetStream
	names    bus.Names
	embedded *bus.Embedded
	dataDir  string
}

func openServer(ctx context.Context, o Options, rep *Report) (*server, error) {
	s := &server{url: o.NATS, creds: o.Creds}
	if s.url == "" {
		dir, err := os.MkdirTemp("", "sluice-bench-store-")
		if err != nil {
			return nil, fmt.Errorf("store dir: %w", err)
		}
		s.dataDir = dir
		e, err := bus.StartEmbedded(ctx, bus.EmbeddedOptions{DataDir: filepath.Join(dir, "jetstream"), Listen: "127.0.0.1:-1", Logger: o.Logger})
		if err != nil {
			_ = os.RemoveAll(dir)
			return nil, err
		}
		s.embedded, s.url = e, e.ClientURL()
		rep.Server = "embedded nats-server, file store in " + dir
	} else {
		rep.Server = o.NATS
	}
	nc, err := bus.Connect(ctx, bus.ConnectOptions{URL: s.url, CredsFile: s.creds, Name: "sluice bench"})
	if err != nil {
		s.close()
		return nil, err
	}
	s.nc = nc
	if s.js, err = jetstream.New(nc); err != nil {
		s.close()
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	// A prefix of its own: on a given server the benchmark touches nothing else, and
	// removes what it made (bus.Deprovision).
	s.names = bus.NewNames(fmt.Sprintf("bench%d", time.Now().UnixNano()%1e9))
	return s, nil
}

func (s *server) close() {
	if s.nc != nil {
		if s.embedded == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			for _, name := range append(FloorStreams(s.names.Prefix), ProtocolStreams(s.names.Prefix)...) {
				if err := s.js.DeleteStream(ctx, name); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
					fmt.Fprintf(os.Stderr, "sluice bench: remove stream %s on %s: %v\n", name, s.url, err)
				}
			}
			if err := bus.Deprovision(ctx, s.js, bus.Config{Names: s.names}); err != nil {
				fmt.Fprintf(os.Stderr, "sluice bench: remove what the benchmark made on %s: %v\n", s.url, err)
			}
			cancel()
		}
		s.nc.Close()
	}
	if s.embedded != nil {
		s.embedded.Shutdown()
	}
	if s.dataDir != "" {
		_ = os.RemoveAll(s.dataDir)
	}
}

// waitRuns signals run ends from the events' core subjects, so waiting costs no polling. A
// repeated run end (events are at least once) is ignored.
type waitRuns struct {
	mu      sync.Mutex
	waiters map[string]chan struct{}
	sub     *nats.Subscription
}

// newWaitRuns follows the run events on subject (a filter), each naming its run in the
// ce-subject header; a run.submitted event is not an end.
func newWaitRuns(nc *nats.Conn, subject string) (*waitRuns, error) {
	w := &waitRuns{waiters: map[string]chan struct{}{}}
	sub, err := nc.Subscribe(subject, func(m *nats.Msg) {
		if strings.HasSuffix(m.Subject, ".submitted") {
			return
		}
		c := w.ch(m.Header.Get("ce-subject"))
		w.mu.Lock()
		defer w.mu.Unlock()
		select {
		case <-c:
		default:
			close(c)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("subscribe to run events: %w", err)
	}
	w.sub = sub
	return w, nil
}

func (w *waitRuns) ch(id string) chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	c, ok := w.waiters[id]
	if !ok {
		c = make(chan struct{})
		w.waiters[id] = c
	}
	return c
}

// wait returns when run id has ended, or ctx has.
func (w *waitRuns) wait(ctx context.Context, id string) error {
	select {
	case <-w.ch(id):
		return nil
	case <-ctx.Done():
		return fmt.Errorf("run %s did not end: %w", id, context.Cause(ctx))
	}
}
