package workers

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-ci/sluice/internal/bus"
	"github.com/sluice-ci/sluice/internal/bus/bustest"
	"github.com/sluice-ci/sluice/internal/testdir"
	sluicev1 "github.com/sluice-ci/sluice/proto/sluice/v1"
)

// waitLimit bounds every wait for a condition; a healthy run takes a fraction of it.
const waitLimit = 15 * time.Second

const static = sluicev1.StageKind_STAGE_KIND_STATIC

// harness is a provisioned in-process server with a short AckWait, so redeliveries happen
// within a test.
type harness struct {
	env   *bustest.Env
	names bus.Names
}

func newHarness(t testing.TB) *harness {
	t.Helper()
	env := bustest.Start(t, bus.Config{AckWait: 2 * time.Second})
	return &harness{env: env, names: env.Config.Names}
}

// runningWorker is a Worker whose Run goroutine the test owns.
type runningWorker struct {
	cancel context.CancelFunc
	done   chan struct{} // closed when Run returned
	err    error         // Run's error, once done is closed
	logs   *logCapture
}

// stop cancels Run and waits for it to return, as a SIGTERM would.
func (r *runningWorker) stop(t testing.TB) {
	t.Helper()
	r.cancel()
	select {
	case <-r.done:
		if r.err != nil {
			t.Errorf("Run: %v", r.err)
		}
	case <-time.After(waitLimit):
		t.Fatal("Run did not return after its context was cancelled")
	}
}

// start runs a worker on its own connection; c's zero fields get test defaults.
func (h *harness) start(t testing.TB, c Config) *runningWorker {
	t.Helper()
	nc, _ := bustest.Connect(t, h.env.Server.ClientURL())
	if c.Kinds == nil {
		c.Kinds = []sluicev1.StageKind{static}
	}
	if c.ID == "" {
		c.ID = "w-" + t.Name()
	}
	if c.WorkDir == "" {
		c.WorkDir = testdir.Reachable(t)
	}
	if c.CacheDir == "" {
		c.CacheDir = t.TempDir()
	}
	if c.Grace == 0 {
		c.Grace = 5 * time.Second
	}
	// Without root nothing can isolate steps: the tests still run, as the user's own.
	c.UnsafeSharedUser = c.UnsafeSharedUser || os.Geteuid() != 0
	logs := &logCapture{}
	c.Logger = slog.New(logs)
	c.Bus = h.env.Config
	w, err := New(nc, c)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &runningWorker{cancel: cancel, done: make(chan struct{}), logs: logs}
	go func() {
		defer close(r.done)
		r.err = w.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-r.done
	})
	return r
}

func newTask(run string, steps ...string) *sluicev1.Task {
	return &sluicev1.Task{
		RunId: run, Pipeline: "web", Stage: "build", Kind: static, Pool: DefaultPool,
		Attempt: 1, ShardCount: 1,
		Spec: &sluicev1.StageSpec{Name: "build", Kind: static, Run: steps},
	}
}

// publish queues a task the way the coordinator does.
func (h *harness) publish(t testing.TB, task *sluicev1.Task) {
	t.Helper()
	data, err := proto.Marshal(task)
	if err != nil {
		t.Fatal(err)
	}
	msg := nats.NewMsg(h.names.Task(static.Slug(), DefaultPool, task.GetRunId()))
	msg.Data = data
	msg.Header.Set(jetstream.MsgIDHeader, bus.TaskMsgID(task.GetRunId(), task.GetStage(), task.GetAttempt(), task.GetShardIndex(), task.GetShardCount()))
	if _, err := h.env.JS.PublishMsg(t.Context(), msg); err != nil {
		t.Fatalf("publish task: %v", err)
	}
}

type gotResult struct {
	id string // Nats-Msg-Id
	*sluicev1.Result
}

// results reads the results of run, in stream order, until done says enough.
func (h *harness) results(t testing.TB, run string, done func([]gotResult) bool) []gotResult {
	t.Helper()
	cons, err := h.env.JS.OrderedConsumer(t.Context(), h.names.ResultsStream(),
		jetstream.OrderedConsumerConfig{FilterSubjects: []string{h.names.RunResults(run)}})
	if err != nil {
		t.Fatal(err)
	}
	var got []gotResult
	deadline := time.Now().Add(waitLimit)
	for !done(got) {
		if time.Now().After(deadline) {
			t.Fatalf("run %s: results so far %v", run, got)
		}
		msg, err := cons.Next(jetstream.FetchMaxWait(200 * time.Millisecond))
		if err != nil {
			continue
		}
		r := &sluicev1.Result{}
		if err := proto.Unmarshal(msg.Data(), r); err != nil {
			t.Fatalf("result does not decode: %v", err)
		}
		got = append(got, gotResult{id: msg.Headers().Get(jetstream.MsgIDHeader), Result: r})
	}
	return got
}

// final waits for the final result of run.
func (h *harness) final(t testing.TB, run string) *sluicev1.Result {
	t.Helper()
	got := h.results(t, run, func(g []gotResult) bool { return hasFinal(g) })
	for _, r := range got {
		if r.Phase == sluicev1.ResultPhase_RESULT_PHASE_FINAL {
			return r.Result
		}
	}
	return nil
}

func hasFinal(got []gotResult) bool {
	for _, r := range got {
		if r.Phase == sluicev1.ResultPhase_RESULT_PHASE_FINAL {
			return true
		}
	}
	return false
}

// logChunks reads every stored log chunk of run's stage.
func (h *harness) logChunks(t testing.TB, run, stage string) []*sluicev1.LogChunk {
	t.Helper()
	s, err := h.env.JS.Stream(t.Context(), h.names.LogsStream())
	if err != nil {
		t.Fatal(err)
	}
	var chunks []*sluicev1.LogChunk
	for seq := uint64(1); seq <= s.CachedInfo().State.LastSeq; seq++ {
		msg, err := s.GetMsg(t.Context(), seq)
		if err != nil || msg.Subject != h.names.Log(run, stage) {
			continue
		}
		c := &sluicev1.LogChunk{}
		if err := proto.Unmarshal(msg.Data, c); err != nil {
			t.Fatalf("log chunk does not decode: %v", err)
		}
		chunks = append(chunks, c)
	}
	return chunks
}

// waitQueueEmpty waits until every task was acked or terminated: the work queue removes
// them.
func (h *harness) waitQueueEmpty(t testing.TB) {
	t.Helper()
	waitFor(t, "the tasks stream to be empty", func() bool {
		s, err := h.env.JS.Stream(t.Context(), h.names.TasksStream())
		if err != nil {
			t.Fatal(err)
		}
		info, err := s.Info(t.Context())
		return err == nil && info.State.Msgs == 0
	})
}

func (h *harness) consumerInfo(t testing.TB) *jetstream.ConsumerInfo {
	t.Helper()
	cons, err := h.env.JS.Consumer(t.Context(), h.names.TasksStream(), h.names.WorkerConsumer(static.Slug(), DefaultPool))
	if err != nil {
		t.Fatal(err)
	}
	info, err := cons.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return info
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// logCapture is a slog.Handler that keeps the worker's log lines for assertions.
type logCapture struct {
	mu    sync.Mutex
	lines []string
}

func (l *logCapture) Enabled(context.Context, slog.Level) bool { return true }
func (l *logCapture) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *logCapture) WithGroup(string) slog.Handler            { return l }

func (l *logCapture) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", r.Level, r.Message)
	r.Attrs(func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
		return true
	})
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, b.String())
	return nil
}

// waitLine waits until a logged line contains s.
func (l *logCapture) waitLine(t testing.TB, s string) string {
	t.Helper()
	var line string
	waitFor(t, "worker log line "+s, func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		for _, x := range l.lines {
			if strings.Contains(x, s) {
				line = x
				return true
			}
		}
		return false
	})
	return line
}
