package coordinator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/sluice-ci/sluice/coordinator/decide"
	"github.com/sluice-ci/sluice/coordinator/internal/fixture"
	"github.com/sluice-ci/sluice/internal/bus"
	"github.com/sluice-ci/sluice/internal/bus/bustest"
	sluicev1 "github.com/sluice-ci/sluice/proto/sluice/v1"
)

// These tests drive the planner against a real in-process nats-server. The worker side is
// scripted at the wire protocol (tasks in, results out), so each test controls exactly what
// a worker reports; the real worker runtime is exercised by the fleet tests.

// The specs and verdicts the decision tables of coordinator/decide use too.
var (
	stage, sevenStage  = fixture.Stage, fixture.SevenStage
	rolloutStage       = fixture.Rollout
	healthy, unhealthy = fixture.Healthy, fixture.Unhealthy
)

func startCoordinator(t *testing.T, env *bustest.Env, mutate ...func(*Config)) (*Coordinator, func()) {
	t.Helper()
	cfg := Config{Names: env.Config.Names, Bus: env.Config, Logger: testLogger(), TickEvery: 20 * time.Millisecond, ReconcileEvery: 200 * time.Millisecond}
	for _, m := range mutate {
		m(&cfg)
	}
	c, err := New(env.NC, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	select {
	case <-c.Ready():
	case err := <-done:
		t.Fatalf("coordinator stopped: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("coordinator not ready after 20s")
	}
	stop := func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("coordinator: %v", err)
		}
	}
	t.Cleanup(func() {
		select {
		case <-ctx.Done():
		default:
			stop()
		}
	})
	return c, stop
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// scriptedWorker takes tasks of kind static from the shared consumer and answers each with
// what decide returns (nil: hold the task without answering).
type scriptedWorker struct {
	t      *testing.T
	env    *bustest.Env
	js     jetstream.JetStream
	id     bus.Identity
	mu     sync.Mutex
	seen   map[string]int // task msg id -> deliveries seen
	held   []jetstream.Msg
	decide func(*sluicev1.Task) *sluicev1.Result
}

func startWorker(t *testing.T, env *bustest.Env, decide func(*sluicev1.Task) *sluicev1.Result) *scriptedWorker {
	t.Helper()
	return startKindWorker(t, env, sluicev1.StageKind_STAGE_KIND_STATIC, decide)
}

func startKindWorker(t *testing.T, env *bustest.Env, kind sluicev1.StageKind, decide func(*sluicev1.Task) *sluicev1.Result) *scriptedWorker {
	t.Helper()
	return startWorkerAs(t, env, env.JS, scripted, kind, decide)
}

// startWorkerAs is a scripted worker on its own connection (js), publishing as id.
func startWorkerAs(t *testing.T, env *bustest.Env, js jetstream.JetStream, id bus.Identity, kind sluicev1.StageKind, decide func(*sluicev1.Task) *sluicev1.Result) *scriptedWorker {
	t.Helper()
	w := &scriptedWorker{t: t, env: env, js: js, id: id, seen: map[string]int{}, decide: decide}
	cons, err := bus.WorkerConsumer(t.Context(), js, env.Config, kind.Slug(), "default", 1000)
	if err != nil {
		t.Fatal(err)
	}
	cc, err := cons.Consume(func(msg jetstream.Msg) {
		var task sluicev1.Task
		if err := proto.Unmarshal(msg.Data(), &task); err != nil {
			_ = msg.Term()
			return
		}
		w.mu.Lock()
		w.seen[msg.Headers().Get(nats.MsgIdHdr)]++
		w.mu.Unlock()
		r := w.decide(&task)
		if r == nil {
			w.mu.Lock()
			w.held = append(w.held, msg)
			w.mu.Unlock()
			return
		}
		w.report(&task, r)
		_ = msg.Ack()
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cc.Stop)
	return w
}

func (w *scriptedWorker) report(task *sluicev1.Task, r *sluicev1.Result) {
	r.RunId, r.Stage, r.Attempt, r.ShardIndex = task.GetRunId(), task.GetStage(), task.GetAttempt(), task.GetShardIndex()
	r.RolloutSeq = task.GetRollout().GetSeq()
	if r.Phase == sluicev1.ResultPhase_RESULT_PHASE_UNSPECIFIED {
		r.Phase = sluicev1.ResultPhase_RESULT_PHASE_FINAL
	}
	publishResultAs(w.t, w.env, w.js, w.id, r, task.GetLease())
}

// scripted is the identity the scripted workers publish under.
var scripted = bus.Identity{Role: "worker-static", Name: "scripted"}

// publishResult publishes r as the holder of a task with lease does: signed with it.
func publishResult(t *testing.T, env *bustest.Env, r *sluicev1.Result, lease []byte) {
	t.Helper()
	publishResultAs(t, env, env.JS, scripted, r, lease)
}

func publishResultAs(t *testing.T, env *bustest.Env, js jetstream.JetStream, id bus.Identity, r *sluicev1.Result, lease []byte) {
	t.Helper()
	data, _ := proto.Marshal(r)
	msg := nats.NewMsg(env.Config.Names.Result(r.GetRunId(), id))
	msg.Data = data
	msg.Header.Set(bus.HeaderProof, bus.Prove(lease, data))
	// Unique per shard and phase, as the worker's ids are.
	msgID := bus.LeaseID(r.GetRunId(), r.GetStage(), r.GetAttempt(), r.GetShardIndex(), r.GetRolloutSeq())
	msg.Header.Set(nats.MsgIdHdr, bus.ResultMsgID(msgID, strings.ToLower(r.GetPhase().String())))
	if _, err := js.PublishMsg(context.Background(), msg); err != nil {
		t.Errorf("publish result: %v", err)
	}
}

func pass(*sluicev1.Task) *sluicev1.Result {
	return &sluicev1.Result{Outcome: sluicev1.Outcome_OUTCOME_PASSED, Worker: "scripted", Delivery: 1}
}

func submit(t *testing.T, env *bustest.Env, ref string, stages ...*sluicev1.StageSpec) *sluicev1.RunState {
	t.Helper()
	st, err := NewClient(env.NC, env.Config.Names).Submit(t.Context(), &sluicev1.SubmitRunRequest{
		Spec: &sluicev1.PipelineSpec{Version: 1, Name: "web", Stages: stages}, Ref: ref,
	})
	if err != nil {
		t.Fatalf("submit: %v", err)
	}
	return st
}

func waitRun(t *testing.T, env *bustest.Env, id string, want sluicev1.RunStatus) *sluicev1.RunState {
	t.Helper()
	client := NewClient(env.NC, env.Config.Names)
	var st *sluicev1.RunState
	deadline := time.Now().Add(20 * time.Second)
	for {
		var err error
		st, err = client.Get(t.Context(), id)
		if err == nil && st.GetStatus().Terminal() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for run %s to be %s: %s (err %v)", id, want.Short(), describe(st), err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if st.GetStatus() != want {
		t.Fatalf("run %s is %s (%s), want %s", id, st.GetStatus().Short(), st.GetMessage(), want.Short())
	}
	return st
}

// runEvents reads every stored event of a run, checking its CloudEvents headers.
func runEvents(t *testing.T, env *bustest.Env, run string) []*sluicev1.Event {
	t.Helper()
	var out []*sluicev1.Event
	for _, msg := range bustest.Stored(t, env.JS, env.Config.Names.EventsStream(), env.Config.Names.EventFilter("", run)) {
		var ev sluicev1.Event
		if err := proto.Unmarshal(msg.Data(), &ev); err != nil {
			t.Fatal(err)
		}
		if msg.Headers().Get("ce-type") != CloudEventType(ev.GetType()) || msg.Headers().Get("ce-specversion") != "1.0" {
			t.Fatalf("event %s: CloudEvents headers %v", ev.GetId(), msg.Headers())
		}
		out = append(out, &ev)
	}
	return out
}

func TestPlannerRunsADAGAndRecordsEveryTransition(t *testing.T) {
	env := bustest.Start(t, bus.Config{})
	startCoordinator(t, env)
	startWorker(t, env, pass)
	st := submit(t, env, "main", sevenStage()...)
	st = waitRun(t, env, st.GetId(), sluicev1.RunStatus_RUN_STATUS_PASSED)
	var evs []*sluicev1.Event
	waitFor(t, "23 events", func() bool { evs = runEvents(t, env, st.GetId()); return len(evs) >= 23 })
	if len(evs) != 23 {
		t.Fatalf("%d events, want 23 (submitted, 3 per stage, passed)", len(evs))
	}
	for i, ev := range evs {
		if ev.GetSeq() != int64(i+1) {
			t.Fatalf("event %d has seq %d: stream order must be decision order", i, ev.GetSeq())
		}
	}
	for _, s := range st.GetStages() {
		if s.GetStatus() != sluicev1.StageStatus_STAGE_STATUS_PASSED {
			t.Errorf("stage %s %s", s.GetName(), s.GetStatus().Short())
		}
	}
}

func TestPlannerIgnoresDuplicateAndStaleResults(t *testing.T) {
	env := bustest.Start(t, bus.Config{})
	startCoordinator(t, env)
	tasks := make(chan *sluicev1.Task, 10)
	w := startWorker(t, env, func(task *sluicev1.Task) *sluicev1.Result { tasks <- task; return nil })
	a := stage("a")
	a.Retries = 1
	a.RetryBackoff = durationpb.New(10 * time.Millisecond)
	st := submit(t, env, "main", a, stage("b", "a"))

	t1 := <-tasks
	w.report(t1, &sluicev1.Result{Outcome: sluicev1.Outcome_OUTCOME_FAILED, Message: "flaky"})
	t2 := <-tasks
	if t2.GetAttempt() != 2 {
		t.Fatalf("retry attempt %d", t2.GetAttempt())
	}
	// A late pass from attempt 1 must not pass the stage.
	publishResult(t, env, &sluicev1.Result{RunId: st.GetId(), Stage: "a", Attempt: 1, Phase: sluicev1.ResultPhase_RESULT_PHASE_FINAL, Outcome: sluicev1.Outcome_OUTCOME_PASSED, Worker: "late"}, t1.GetLease())
	w.report(t2, &sluicev1.Result{Outcome: sluicev1.Outcome_OUTCOME_PASSED, Worker: "w2"})
	tb := <-tasks
	w.report(tb, &sluicev1.Result{Outcome: sluicev1.Outcome_OUTCOME_PASSED})
	// A duplicate FAILED for b's finished attempt (under a new msg id) changes nothing.
	publishResult(t, env, &sluicev1.Result{RunId: st.GetId(), Stage: "b", Attempt: 1, Phase: sluicev1.ResultPhase_RESULT_PHASE_STARTED, Worker: "dup", Delivery: 2}, tb.GetLease())
	final := waitRun(t, env, st.GetId(), sluicev1.RunStatus_RUN_STATUS_PASSED)
	if got := final.GetStages()[0].GetShards()[0].GetWorker(); got != "w2" {
		t.Fatalf("stage a recorded worker %q; the stale attempt's result must be ignored", got)
	}
	before := runEvents(t, env, st.GetId())
	publishResult(t, env, &sluicev1.Result{RunId: st.GetId(), Stage: "b", Attempt: 1, Phase: sluicev1.ResultPhase_RESULT_PHASE_FINAL, Outcome: sluicev1.Outcome_OUTCOME_FAILED, Worker: "dup2"}, tb.GetLease())
	time.Sleep(200 * time.Millisecond)
	after := runEvents(t, env, st.GetId())
	if len(after) != len(before) {
		t.Fatalf("a duplicate result after the run ended added %d events", len(after)-len(before))
	}
}

func TestPlannerTwoCoordinatorsDispatchEachStageOnce(t *testing.T) {
	env := bustest.Start(t, bus.Config{})
	startCoordinator(t, env, func(c *Config) { c.ID = "c1" })
	nc2, _ := bustest.Connect(t, env.Server.ClientURL())
	env2 := *env
	env2.NC = nc2
	startCoordinator(t, &env2, func(c *Config) { c.ID = "c2" })
	w := startWorker(t, env, pass)

	const runs = 50
	ids := make([]string, runs)
	var wg sync.WaitGroup
	for i := range runs {
		wg.Go(func() {
			ids[i] = submit(t, env, "main", sevenStage()...).GetId()
		})
	}
	wg.Wait()
	for _, id := range ids {
		waitRun(t, env, id, sluicev1.RunStatus_RUN_STATUS_PASSED)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.seen) != runs*7 {
		t.Fatalf("%d distinct tasks, want %d", len(w.seen), runs*7)
	}
	for id, n := range w.seen {
		if n != 1 {
			t.Errorf("task %s delivered %d times", id, n)
		}
	}
	stream, err := env.JS.Stream(t.Context(), env.Config.Names.TasksStream())
	if err != nil {
		t.Fatal(err)
	}
	// The work queue removes acked tasks; a duplicate publish would have left a second
	// message (delivered above) or been dropped by the duplicate window.
	if n := stream.CachedInfo().State.Msgs; n != 0 {
		t.Fatalf("%d tasks left in the queue", n)
	}
}

func TestPlannerRestartedCoordinatorResumesRuns(t *testing.T) {
	env := bustest.Start(t, bus.Config{})
	_, stop := startCoordinator(t, env)
	tasks := make(chan *sluicev1.Task, 10)
	w := startWorker(t, env, func(task *sluicev1.Task) *sluicev1.Result { tasks <- task; return nil })
	st := submit(t, env, "main", stage("a"), stage("b", "a"))
	ta := <-tasks
	stop()
	// The result lands while no coordinator runs; the durable consumer keeps it.
	w.report(ta, &sluicev1.Result{Outcome: sluicev1.Outcome_OUTCOME_PASSED})
	startCoordinator(t, env)
	tb := <-tasks
	w.report(tb, &sluicev1.Result{Outcome: sluicev1.Outcome_OUTCOME_PASSED})
	waitRun(t, env, st.GetId(), sluicev1.RunStatus_RUN_STATUS_PASSED)
}

func TestPlannerRepublishesWhatACrashedPeerDecided(t *testing.T) {
	env := bustest.Start(t, bus.Config{})
	// Store a decided state whose task and events were never published, as a coordinator
	// that died between its CAS and its publishes leaves it.
	p := decide.DefaultPolicy()
	now := time.Now()
	spec := &sluicev1.PipelineSpec{Version: 1, Name: "web", Stages: []*sluicev1.StageSpec{stage("a")}}
	st := decide.NewRun("crashed1", spec, &sluicev1.SubmitRunRequest{Ref: "main"}, "", now)
	d, err := p.Decide(st, decide.Start{}, now)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := proto.Marshal(d.State)
	kv, err := env.JS.KeyValue(t.Context(), env.Config.Names.RunsBucket())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Create(t.Context(), "crashed1", data); err != nil {
		t.Fatal(err)
	}
	startWorker(t, env, pass)
	startCoordinator(t, env)
	waitRun(t, env, "crashed1", sluicev1.RunStatus_RUN_STATUS_PASSED)
	evs := runEvents(t, env, "crashed1")
	if len(evs) != 5 || evs[0].GetType() != "run.submitted" {
		t.Fatalf("events %d (first %v): the outbox of the stored state must be published", len(evs), evs[0].GetType())
	}
}

func TestPlannerCancelPurgesQueuedTasksAndSignalsWorkers(t *testing.T) {
	env := bustest.Start(t, bus.Config{})
	startCoordinator(t, env)
	signals := make(chan *sluicev1.CancelSignal, 4)
	sub, err := env.NC.Subscribe(env.Config.Names.AllCancels(), func(m *nats.Msg) {
		var sig sluicev1.CancelSignal
		_ = proto.Unmarshal(m.Data, &sig)
		signals <- &sig
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	// No worker: both roots stay queued in the work queue.
	other := submit(t, env, "main", stage("x"))
	st := submit(t, env, "main", stage("a"), stage("b"), stage("c", "a"))
	stream, _ := env.JS.Stream(t.Context(), env.Config.Names.TasksStream())
	waitFor(t, "3 queued tasks", func() bool {
		info, _ := stream.Info(t.Context())
		return info.State.Msgs == 3
	})
	got, err := NewClient(env.NC, env.Config.Names).Cancel(t.Context(), st.GetId(), "by test")
	if err != nil {
		t.Fatal(err)
	}
	if got.GetStatus() != sluicev1.RunStatus_RUN_STATUS_CANCELLED {
		t.Fatalf("cancel returned %s", got.GetStatus().Short())
	}
	info, _ := stream.Info(t.Context())
	if info.State.Msgs != 1 {
		t.Fatalf("%d tasks queued after cancel, want only the other run's", info.State.Msgs)
	}
	select {
	case sig := <-signals:
		if sig.GetRunId() != st.GetId() || sig.GetReason() != "by test" {
			t.Fatalf("signal %v", sig)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no cancel signal")
	}
	if o, _ := NewClient(env.NC, env.Config.Names).Get(t.Context(), other.GetId()); o.GetStatus() != sluicev1.RunStatus_RUN_STATUS_RUNNING {
		t.Fatalf("the other run is %s", o.GetStatus().Short())
	}
}

func TestPlannerMaxDeliveriesFailsTheStage(t *testing.T) {
	env := bustest.Start(t, bus.Config{AckWait: 200 * time.Millisecond, MaxDeliver: 2})
	startCoordinator(t, env)
	// A worker that takes every task and never answers, like one that crashes each time.
	startWorker(t, env, func(*sluicev1.Task) *sluicev1.Result { return nil })
	st := submit(t, env, "main", stage("a"))
	final := waitRun(t, env, st.GetId(), sluicev1.RunStatus_RUN_STATUS_FAILED)
	if msg := final.GetStages()[0].GetMessage(); !strings.Contains(msg, "delivered 2 times") {
		t.Fatalf("stage message %q does not give the reason", msg)
	}
	stream, _ := env.JS.Stream(t.Context(), env.Config.Names.TasksStream())
	waitFor(t, "the exhausted task to leave the queue", func() bool {
		info, _ := stream.Info(t.Context())
		return info.State.Msgs == 0
	})
}

func TestPlannerDeadlineFailsAStageWhoseWorkerWentSilent(t *testing.T) {
	env := bustest.Start(t, bus.Config{})
	startCoordinator(t, env, func(c *Config) { c.Policy = decide.Policy{DeadlineGrace: 100 * time.Millisecond} })
	w := startWorker(t, env, func(task *sluicev1.Task) *sluicev1.Result {
		return &sluicev1.Result{Phase: sluicev1.ResultPhase_RESULT_PHASE_STARTED, Worker: "silent", Delivery: 1}
	})
	_ = w
	a := stage("a")
	a.Timeout = durationpb.New(300 * time.Millisecond)
	st := submit(t, env, "main", a)
	final := waitRun(t, env, st.GetId(), sluicev1.RunStatus_RUN_STATUS_FAILED)
	if msg := final.GetStages()[0].GetMessage(); !strings.Contains(msg, "timeout of 300ms") {
		t.Fatalf("stage message %q", msg)
	}
}

func TestAPIErrors(t *testing.T) {
	env := bustest.Start(t, bus.Config{})
	client := NewClient(env.NC, env.Config.Names)
	if _, err := client.Get(t.Context(), "nope"); !errors.Is(err, ErrNoCoordinator) {
		t.Fatalf("without a coordinator: %v, want ErrNoCoordinator", err)
	}
	startCoordinator(t, env)
	for name, call := range map[string]func() error{
		"get":      func() error { _, err := client.Get(t.Context(), "nope"); return err },
		"cancel":   func() error { _, err := client.Cancel(t.Context(), "nope", ""); return err },
		"approve":  func() error { _, err := client.Approve(t.Context(), "nope", "x"); return err },
		"rollback": func() error { _, err := client.Rollback(t.Context(), "nope", ""); return err },
	} {
		if err := call(); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "nope") {
			t.Errorf("%s of an unknown run: %v, want ErrNotFound naming it", name, err)
		}
	}
	_, err := client.Submit(t.Context(), &sluicev1.SubmitRunRequest{Spec: &sluicev1.PipelineSpec{Name: "x"}})
	if !errors.Is(err, ErrBadRequest) {
		t.Fatalf("empty pipeline: %v", err)
	}
	_, err = client.Submit(t.Context(), &sluicev1.SubmitRunRequest{SpecYaml: "version: 1\nname: x\nstages:\n  a: {kind: nope, run: [true]}\n", File: "p.yaml"})
	if !errors.Is(err, ErrBadRequest) || !strings.Contains(err.Error(), "p.yaml:4") {
		t.Fatalf("bad YAML submission: %v, want the file and line", err)
	}
}

func TestHTTPAPIWithoutAuthIsReadOnly(t *testing.T) {
	env := bustest.Start(t, bus.Config{})
	c, _ := startCoordinator(t, env)
	startWorker(t, env, pass)
	srv := httptest.NewServer(c.Handler())
	defer srv.Close()
	st := submit(t, env, "main", stage("a"))
	waitRun(t, env, st.GetId(), sluicev1.RunStatus_RUN_STATUS_PASSED)
	for path, want := range map[string]int{
		"/api/v1/runs":               200,
		"/api/v1/runs/" + st.GetId(): 200,
		"/api/v1/runs/nope":          404,
		"/":                          200,
		"/runs/" + st.GetId():        200,
		"/healthz":                   200,
	} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != want {
			t.Errorf("GET %s: %d, want %d", path, resp.StatusCode, want)
		}
	}
	body := `{"specYaml":"version: 1\nname: web\nstages:\n  a: {kind: static, run: [\"true\"]}\n","ref":"main"}`
	resp, err := http.Post(srv.URL+"/api/v1/runs", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("submit over HTTP on a fleet without authentication: %d, want 403", resp.StatusCode)
	}
}

func testLogger() *slog.Logger {
	if os.Getenv("SLUICE_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return bustest.Logger()
}

func describe(st *sluicev1.RunState) string {
	var b strings.Builder
	fmt.Fprintf(&b, "run %s", st.GetStatus().Short())
	for _, s := range st.GetStages() {
		fmt.Fprintf(&b, "; %s %s #%d %s", s.GetName(), s.GetStatus().Short(), s.GetAttempt(), s.GetMessage())
	}
	return b.String()
}

func TestPlannerRolloutRollsBackAnUnhealthyCanary(t *testing.T) {
	env := bustest.Start(t, bus.Config{})
	startCoordinator(t, env)
	var mu sync.Mutex
	var actions []string
	w := startKindWorker(t, env, sluicev1.StageKind_STAGE_KIND_TRAFFIC_SHIFT, func(task *sluicev1.Task) *sluicev1.Result {
		a := task.GetRollout()
		mu.Lock()
		actions = append(actions, fmt.Sprintf("%s %d", decide.ActionName(a.GetAction()), a.GetWeight()))
		mu.Unlock()
		r := &sluicev1.Result{Outcome: sluicev1.Outcome_OUTCOME_PASSED, Worker: "ts"}
		if a.GetAction() == sluicev1.RolloutAction_ROLLOUT_ACTION_ANALYSE {
			r.Verdict = healthy()
			if a.GetWeight() == 50 {
				r.Outcome, r.Verdict = sluicev1.Outcome_OUTCOME_FAILED, unhealthy()
			}
		}
		return r
	})
	st := submit(t, env, "main", stage("build"), func() *sluicev1.StageSpec {
		s := rolloutStage()
		s.Needs = []string{"build"}
		return s
	}())
	startWorker(t, env, pass)
	final := waitRun(t, env, st.GetId(), sluicev1.RunStatus_RUN_STATUS_FAILED)
	mu.Lock()
	got := slices.Clone(actions)
	mu.Unlock()
	want := []string{"deploy 0", "set weight 10", "analyse 10", "set weight 50", "analyse 50", "rollback 0"}
	if !slices.Equal(got, want) {
		t.Fatalf("actions %v, want %v", got, want)
	}
	w.mu.Lock()
	for id, n := range w.seen {
		if n != 1 {
			t.Errorf("action %s delivered %d times", id, n)
		}
	}
	w.mu.Unlock()
	ro := final.GetStages()[1].GetRollout()
	if ro.GetPhase() != sluicev1.RolloutPhase_ROLLOUT_PHASE_ROLLED_BACK || ro.GetWeight() != 0 || len(ro.GetVerdicts()) != 2 {
		t.Fatalf("rollout %v", ro)
	}
	var types []string
	for _, ev := range runEvents(t, env, st.GetId()) {
		if ev.GetStage() == "production" {
			types = append(types, ev.GetType())
		}
	}
	wantTypes := []string{"stage.queued", "stage.started", "rollout.step_started", "traffic.shifted", "analysis.verdict",
		"rollout.step_started", "traffic.shifted", "analysis.verdict", "rollout.rolled_back", "stage.failed"}
	if !slices.Equal(types, wantTypes) {
		t.Fatalf("events\n got %v\nwant %v", types, wantTypes)
	}
}

func TestPlannerConcurrencyGroupRunsOneAtATimeInOrder(t *testing.T) {
	env := bustest.Start(t, bus.Config{})
	startCoordinator(t, env)
	tasks := make(chan *sluicev1.Task, 10)
	w := startWorker(t, env, func(task *sluicev1.Task) *sluicev1.Result { tasks <- task; return nil })
	prod := stage("prod")
	prod.Concurrency = &sluicev1.Concurrency{Group: "production"}
	var ids []string
	for range 3 {
		ids = append(ids, submit(t, env, "main", prod).GetId())
		time.Sleep(20 * time.Millisecond)
	}
	for i, id := range ids {
		task := <-tasks
		if task.GetRunId() != id {
			t.Fatalf("stage %d to run belongs to %s, want %s: the group serves waiters in order", i, task.GetRunId(), id)
		}
		select {
		case other := <-tasks:
			t.Fatalf("%s dispatched while %s holds the group", other.GetRunId(), id)
		case <-time.After(300 * time.Millisecond):
		}
		w.report(task, &sluicev1.Result{Outcome: sluicev1.Outcome_OUTCOME_PASSED})
		waitRun(t, env, id, sluicev1.RunStatus_RUN_STATUS_PASSED)
	}
}

func TestPlannerFreesALockWhoseHolderIsGone(t *testing.T) {
	env := bustest.Start(t, bus.Config{})
	locks, err := env.JS.KeyValue(t.Context(), env.Config.Names.LocksBucket())
	if err != nil {
		t.Fatal(err)
	}
	// A coordinator crashed after the holder's run ended, before it released the lock.
	if _, err := locks.Create(t.Context(), "production", []byte("vanished/prod")); err != nil {
		t.Fatal(err)
	}
	startCoordinator(t, env)
	startWorker(t, env, pass)
	prod := stage("prod")
	prod.Concurrency = &sluicev1.Concurrency{Group: "production"}
	st := submit(t, env, "main", prod)
	waitRun(t, env, st.GetId(), sluicev1.RunStatus_RUN_STATUS_PASSED)
}
