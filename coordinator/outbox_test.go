package coordinator

import (
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-ci/sluice/coordinator/decide"
	"github.com/sluice-ci/sluice/internal/bus"
	"github.com/sluice-ci/sluice/internal/bus/bustest"
	sluicev1 "github.com/sluice-ci/sluice/proto/sluice/v1"
)

func eventSeqs(evs []*sluicev1.Event) []int64 {
	var out []int64
	for _, ev := range evs {
		out = append(out, ev.GetSeq())
	}
	return out
}

// coreEvents counts, per event id, the run's events core NATS subscribers receive.
type coreEvents struct {
	mu   sync.Mutex
	seen map[string]int
}

func subscribeEvents(t *testing.T, env *bustest.Env, run string) *coreEvents {
	t.Helper()
	ce := &coreEvents{seen: map[string]int{}}
	sub, err := env.NC.Subscribe(env.Config.Names.EventFilter("", run), func(m *nats.Msg) {
		ce.mu.Lock()
		ce.seen[m.Header.Get("ce-id")]++
		ce.mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	return ce
}

func (ce *coreEvents) repeated() map[string]int {
	ce.mu.Lock()
	defer ce.mu.Unlock()
	out := map[string]int{}
	for id, n := range ce.seen {
		if n != 1 {
			out[id] = n
		}
	}
	return out
}

// With the events stream gone for a while (deleted and created again by an operator), the
// events decided meanwhile stay in the run's outbox and reach the new stream: none is lost
// because a later decision came first, none is stored twice.
func TestPlannerEventsDecidedWhileTheStreamIsGoneArePublishedLater(t *testing.T) {
	env := bustest.Start(t, bus.Config{})
	// No reconcile during the test: the next decision must carry the events by itself.
	startCoordinator(t, env, func(c *Config) { c.ReconcileEvery = time.Hour })
	tasks := make(chan *sluicev1.Task, 10)
	w := startWorker(t, env, func(task *sluicev1.Task) *sluicev1.Result { tasks <- task; return nil })
	st := submit(t, env, "main", stage("a"), stage("b", "a"), stage("c", "b"))
	ta := <-tasks
	waitFor(t, "the first events", func() bool { return len(runEvents(t, env, st.GetId())) >= 2 })
	before := eventSeqs(runEvents(t, env, st.GetId()))
	if err := env.JS.DeleteStream(t.Context(), env.Config.Names.EventsStream()); err != nil {
		t.Fatal(err)
	}
	w.report(ta, &sluicev1.Result{Outcome: sluicev1.Outcome_OUTCOME_PASSED})
	tb := <-tasks
	// Long enough for the client's retries of the failed publishes (2 x 250 ms) to give up.
	time.Sleep(1500 * time.Millisecond)
	if err := bus.Provision(t.Context(), env.JS, env.Config); err != nil {
		t.Fatal(err)
	}
	w.report(tb, &sluicev1.Result{Outcome: sluicev1.Outcome_OUTCOME_PASSED})
	tc := <-tasks
	w.report(tc, &sluicev1.Result{Outcome: sluicev1.Outcome_OUTCOME_PASSED})
	final := waitRun(t, env, st.GetId(), sluicev1.RunStatus_RUN_STATUS_PASSED)
	var want []int64
	for seq := before[len(before)-1] + 1; seq <= final.GetEventSeq(); seq++ {
		want = append(want, seq)
	}
	var got []int64
	deadline := time.Now().Add(10 * time.Second)
	for !slices.Equal(got, want) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		// Publishes retried across the outage may land out of order; subscribers order a
		// run's events by seq.
		got = eventSeqs(runEvents(t, env, st.GetId()))
		slices.Sort(got)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("the new events stream holds seqs %v, want %v: every event decided after the deletion, once", got, want)
	}
}

// A finished run is announced once: not again to core subscribers when the watcher brings
// its state back, and not again after a restart, even past the duplicate window, when the
// events stream would store a repeat as a new event.
func TestPlannerNeverAnnouncesAFinishedRunTwice(t *testing.T) {
	env := bustest.Start(t, bus.Config{DuplicateWindow: time.Second})
	_, stop := startCoordinator(t, env, func(c *Config) { c.ReconcileEvery = 50 * time.Millisecond })
	startWorker(t, env, pass)
	st := submit(t, env, "main", stage("a"), stage("b", "a"))
	core := subscribeEvents(t, env, st.GetId())
	final := waitRun(t, env, st.GetId(), sluicev1.RunStatus_RUN_STATUS_PASSED)
	// Well past the duplicate window (the server forgets ids on a timer), with a reconcile
	// every 50 ms.
	time.Sleep(3 * time.Second)
	stop()
	c2, _ := startCoordinator(t, env, func(c *Config) { c.ReconcileEvery = 50 * time.Millisecond })
	if _, err := c2.GetRun(t.Context(), st.GetId()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	var want []int64
	for seq := int64(1); seq <= final.GetEventSeq(); seq++ {
		want = append(want, seq)
	}
	if got := eventSeqs(runEvents(t, env, st.GetId())); !slices.Equal(got, want) {
		t.Errorf("events stream holds seqs %v, want each of 1..%d once", got, final.GetEventSeq())
	}
	if rep := core.repeated(); len(rep) > 0 {
		t.Errorf("core subscribers received events more than once: %v", rep)
	}
}

// A restarted coordinator knows which finished runs had their events published from the
// seals, not by asking the events stream about each run: with many finished runs in the
// bucket, one read per run would stall the start.
func TestARestartAsksTheEventsStreamAboutNoSealedRun(t *testing.T) {
	env := bustest.Start(t, bus.Config{})
	_, stop := startCoordinator(t, env)
	startWorker(t, env, pass)
	const runs = 12
	for range runs {
		st := submit(t, env, "main", stage("a"))
		waitRun(t, env, st.GetId(), sluicev1.RunStatus_RUN_STATUS_PASSED)
	}
	waitFor(t, "seals naming every finished run", func() bool { return len(sealedInBucket(t, env)) == runs })
	stop()

	// Every read of a stored message of the events stream, direct or through the API.
	var mu sync.Mutex
	var reads []string
	nc, _ := bustest.Connect(t, env.Server.ClientURL())
	sub, err := nc.Subscribe("$JS.API.>", func(m *nats.Msg) {
		if strings.Contains(m.Subject, "GET."+env.Config.Names.EventsStream()) {
			mu.Lock()
			reads = append(reads, m.Subject)
			mu.Unlock()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	startCoordinator(t, env, func(c *Config) { c.ReconcileEvery = 50 * time.Millisecond })
	time.Sleep(500 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	if len(reads) > 0 {
		t.Errorf("the restarted coordinator read the events stream %d times for %d sealed runs: %v", len(reads), runs, reads)
	}
}

// sealedInBucket is the set of runs the stored seals name.
func sealedInBucket(t *testing.T, env *bustest.Env) map[string]struct{} {
	t.Helper()
	kv, err := env.JS.KeyValue(t.Context(), env.Config.Names.RunsBucket())
	if err != nil {
		t.Fatal(err)
	}
	w, err := kv.Watch(t.Context(), sealPrefix+".>", jetstream.IgnoreDeletes())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = w.Stop() }()
	sealed := map[string]struct{}{}
	for e := range w.Updates() {
		if e == nil {
			break
		}
		for _, run := range sealedRuns(e.Value()) {
			sealed[run] = struct{}{}
		}
	}
	return sealed
}

// unseal deletes every seal, as if the coordinator had died before writing them.
func unseal(t *testing.T, env *bustest.Env) {
	t.Helper()
	kv, err := env.JS.KeyValue(t.Context(), env.Config.Names.RunsBucket())
	if err != nil {
		t.Fatal(err)
	}
	keys, err := kv.ListKeysFiltered(t.Context(), sealPrefix+".>")
	if err != nil {
		t.Fatal(err)
	}
	for key := range keys.Keys() {
		if err := kv.Purge(t.Context(), key); err != nil {
			t.Fatal(err)
		}
	}
}

func storedState(t *testing.T, env *bustest.Env, run string) *sluicev1.RunState {
	t.Helper()
	kv, err := env.JS.KeyValue(t.Context(), env.Config.Names.RunsBucket())
	if err != nil {
		t.Fatal(err)
	}
	e, err := kv.Get(t.Context(), run)
	if err != nil {
		t.Fatal(err)
	}
	var st sluicev1.RunState
	if err := proto.Unmarshal(e.Value(), &st); err != nil {
		t.Fatal(err)
	}
	return &st
}

// A coordinator that died after publishing a finished run's events, before sealing the
// run, leaves no word that they were published. The next coordinator finds them in the
// events stream, publishes none again, however long ago they were published, and seals the
// run.
func TestPlannerDoesNotRepublishWhatTheStreamHolds(t *testing.T) {
	env := bustest.Start(t, bus.Config{DuplicateWindow: time.Second})
	_, stop := startCoordinator(t, env)
	startWorker(t, env, pass)
	st := submit(t, env, "main", stage("a"))
	waitRun(t, env, st.GetId(), sluicev1.RunStatus_RUN_STATUS_PASSED)
	stop()
	// The state as the dead coordinator left it: unsealed, every event in the outbox.
	unseal(t, env)
	crashed := storedState(t, env, st.GetId())
	crashed.Outbox = runEvents(t, env, st.GetId())
	data, err := proto.Marshal(crashed)
	if err != nil {
		t.Fatal(err)
	}
	kv, err := env.JS.KeyValue(t.Context(), env.Config.Names.RunsBucket())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(t.Context(), st.GetId(), data); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second)
	core := subscribeEvents(t, env, st.GetId())
	startCoordinator(t, env, func(c *Config) { c.ReconcileEvery = 50 * time.Millisecond })
	waitFor(t, "a seal naming the run", func() bool {
		_, ok := sealedInBucket(t, env)[st.GetId()]
		return ok
	})
	if n := len(runEvents(t, env, st.GetId())); n != len(crashed.GetOutbox()) {
		t.Errorf("the events stream holds %d events of the run, want its %d", n, len(crashed.GetOutbox()))
	}
	core.mu.Lock()
	defer core.mu.Unlock()
	if len(core.seen) > 0 {
		t.Errorf("events published again: %v", core.seen)
	}
}

// Replicated buckets report a compare-and-swap conflict with the code 10071 when the
// update is checked against the stored revision, and 10164 when it races an update still
// in flight in the cluster; both are a conflict the planner decides again on, never a
// failure of the input.
func TestCommitReportsAConflictOnAReplicatedBucket(t *testing.T) {
	nodes := bustest.Cluster(t, 3)
	nc, js := bustest.Connect(t, nodes[0].ClientURL())
	cfg := bus.Config{Replicas: 3}.WithDefaults()
	if err := bus.Provision(t.Context(), js, cfg); err != nil {
		t.Fatal(err)
	}
	c, err := New(nc, Config{Names: cfg.Names, Bus: cfg, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	if c.runs, err = js.KeyValue(t.Context(), cfg.Names.RunsBucket()); err != nil {
		t.Fatal(err)
	}
	st := decide.NewRun("r1", &sluicev1.PipelineSpec{Stages: []*sluicev1.StageSpec{stage("a")}}, &sluicev1.SubmitRunRequest{}, "", time.Now())
	rev, err := c.commit(t.Context(), "r1", st, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.commit(t.Context(), "r1", st, 0); !errors.Is(err, ErrConflict) {
		t.Errorf("creating r1 again: %v, want ErrConflict", err)
	}
	// Writers racing from one revision: one wins each round, every other one conflicts.
	const writers, rounds = 8, 20
	for range rounds {
		var wg sync.WaitGroup
		revs := make([]uint64, writers)
		errs := make([]error, writers)
		for w := range writers {
			wg.Go(func() { revs[w], errs[w] = c.commit(t.Context(), "r1", st, rev) })
		}
		wg.Wait()
		won := 0
		for w, err := range errs {
			switch {
			case err == nil:
				won++
				rev = revs[w]
			case !errors.Is(err, ErrConflict):
				t.Fatalf("a writer that lost the race: %v, want ErrConflict", err)
			}
		}
		if won != 1 {
			t.Fatalf("%d writers won one revision", won)
		}
	}
}

// A stored state that contradicts its own spec (here: a running stage the spec does not
// have) is refused where it is read; the coordinator goes on, and a run beside it passes.
func TestPlannerACorruptStateFailsAlone(t *testing.T) {
	env := bustest.Start(t, bus.Config{})
	spec := &sluicev1.PipelineSpec{Version: 1, Name: "web", Stages: []*sluicev1.StageSpec{stage("a")}}
	now := time.Now()
	bad := decide.NewRun("corrupt1", spec, &sluicev1.SubmitRunRequest{Ref: "main"}, "", now)
	d, err := decide.DefaultPolicy().Decide(bad, decide.Start{}, now)
	if err != nil {
		t.Fatal(err)
	}
	bad = d.State
	bad.Stages = append(bad.Stages, proto.Clone(bad.Stages[0]).(*sluicev1.StageState))
	bad.Stages[1].Name = "ghost"
	data, err := proto.Marshal(bad)
	if err != nil {
		t.Fatal(err)
	}
	kv, err := env.JS.KeyValue(t.Context(), env.Config.Names.RunsBucket())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Create(t.Context(), "corrupt1", data); err != nil {
		t.Fatal(err)
	}
	c, _ := startCoordinator(t, env)
	startWorker(t, env, pass)
	publishResult(t, env, &sluicev1.Result{RunId: "corrupt1", Stage: "ghost", Attempt: 1, Phase: sluicev1.ResultPhase_RESULT_PHASE_FINAL, Outcome: sluicev1.Outcome_OUTCOME_PASSED},
		c.lease("corrupt1", "ghost", 1, 0, 0))
	good := submit(t, env, "main", stage("a"), stage("b", "a"))
	waitRun(t, env, good.GetId(), sluicev1.RunStatus_RUN_STATUS_PASSED)
	if _, err := c.GetRun(t.Context(), "corrupt1"); !errors.Is(err, ErrUnstorable) {
		t.Fatalf("reading the corrupt run: %v, want ErrUnstorable", err)
	}
}

// An event the stream refuses while a later event of the same decision is stored is not
// taken as published: it is sent again until the stream has it. (Acking only a decision's
// last event lost the ones before it when a replicated stream's leader changed between
// them; here the stream refuses an oversized event, which any server can be made to do: the
// long name of stage a is in its events' payload and ce-subject, not in b's.)
func TestAnEventTheStreamRefusedIsSentAgain(t *testing.T) {
	env := bustest.Start(t, bus.Config{})
	startCoordinator(t, env, func(c *Config) { c.ReconcileEvery = 200 * time.Millisecond })
	tasks := make(chan *sluicev1.Task, 10)
	w := startWorker(t, env, func(task *sluicev1.Task) *sluicev1.Result { tasks <- task; return nil })
	long := strings.Repeat("a", 400)
	st := submit(t, env, "main", stage(long), stage("b", long))
	ta := <-tasks
	waitFor(t, "the first events", func() bool { return len(runEvents(t, env, st.GetId())) >= 2 })

	// b's events fit; those of the stage with the long name do not.
	events, err := env.JS.Stream(t.Context(), env.Config.Names.EventsStream())
	if err != nil {
		t.Fatal(err)
	}
	cfg := events.CachedInfo().Config
	limited := cfg
	limited.MaxMsgSize = 1000
	if _, err := env.JS.UpdateStream(t.Context(), limited); err != nil {
		t.Fatal(err)
	}
	w.report(ta, &sluicev1.Result{Outcome: sluicev1.Outcome_OUTCOME_PASSED})
	<-tasks
	passed := func() bool {
		for _, ev := range runEvents(t, env, st.GetId()) {
			if ev.GetType() == "stage.passed" && ev.GetStage() == long {
				return true
			}
		}
		return false
	}
	waitFor(t, "b's queued event, after the long-named stage's refused passed event", func() bool {
		for _, ev := range runEvents(t, env, st.GetId()) {
			if ev.GetType() == "stage.queued" && ev.GetStage() == "b" {
				return true
			}
		}
		return false
	})
	if passed() {
		t.Fatal("the stream stored an event over its maximum message size: the test sets nothing up")
	}

	if _, err := env.JS.UpdateStream(t.Context(), cfg); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the long-named stage's passed event, sent again once the stream takes it", passed)
}
