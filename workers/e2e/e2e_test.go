package e2e

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	engine "github.com/sluice-ci/sluice/e2e"
	"github.com/sluice-ci/sluice/internal/bus"
	"github.com/sluice-ci/sluice/internal/bus/bustest"
	"github.com/sluice-ci/sluice/internal/source"
	"github.com/sluice-ci/sluice/internal/testdir"
	sluicev1 "github.com/sluice-ci/sluice/proto/sluice/v1"
	"github.com/sluice-ci/sluice/workers"
	"github.com/sluice-ci/sluice/workers/testkind"
)

const kind = sluicev1.StageKind_STAGE_KIND_E2E

// waitLimit bounds every wait for a result; a healthy run takes a fraction of it.
const waitLimit = 60 * time.Second

// handler is the one e2e handler, and so the one browser, of this test process, as in a
// worker process.
var handler = New(engine.Config{Logger: slog.New(slog.DiscardHandler)})

func TestMain(m *testing.M) {
	if url := os.Getenv(childNATSEnv); url != "" {
		os.Exit(runChildWorker(url))
	}
	code := m.Run()
	if err := handler.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "close the browser:", err)
	}
	os.Exit(code)
}

// needBrowser skips without a browser, except under CI=true where that is a failure.
func needBrowser(t *testing.T) {
	t.Helper()
	if _, err := engine.FindChromium(""); err != nil {
		msg := fmt.Sprintf("no browser for the e2e tests: %v", err)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
}

// shopSite is a page with a button that says "Bought" when clicked.
func shopSite(t testing.TB) *httptest.Server {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprint(w, `<!doctype html><title>Shop</title><h1>Shop</h1><button id="buy">Buy</button><p id="out"></p>
<script>document.getElementById("buy").onclick = () => { document.getElementById("out").textContent = "Bought"; };</script>`)
	}))
	t.Cleanup(s.Close)
	return s
}

// fleet is a provisioned in-process NATS server with the test source tree uploaded.
type fleet struct {
	env    *bustest.Env
	digest string
}

func newFleet(t testing.TB) *fleet { return newFleetOf(t, "testdata/src") }

// newFleetOf starts a server and uploads dir as the tasks' source tree.
func newFleetOf(t testing.TB, dir string) *fleet { return newFleetAck(t, dir, 5*time.Second) }

// newFleetAck is newFleetOf with the tasks' AckWait.
func newFleetAck(t testing.TB, dir string, ackWait time.Duration) *fleet {
	t.Helper()
	env := bustest.Start(t, bus.Config{AckWait: ackWait})
	store, err := env.JS.ObjectStore(t.Context(), env.Config.Names.SourcesStore())
	if err != nil {
		t.Fatal(err)
	}
	digest, err := source.Upload(t.Context(), store, dir, source.DefaultLimits())
	if err != nil {
		t.Fatalf("upload the source tree: %v", err)
	}
	return &fleet{env: env, digest: digest}
}

// startWorker runs a worker of the e2e kind with the shared handler until the test ends.
func (f *fleet) startWorker(t testing.TB, id string) {
	t.Helper()
	f.startWorkerWith(t, id, handler, 5*time.Second)
}

// startWorkerWith runs a worker with handler h; stop ends it as a SIGTERM would, handing
// back what does not finish within grace.
func (f *fleet) startWorkerWith(t testing.TB, id string, h *Handler, grace time.Duration) (stop func()) {
	t.Helper()
	nc, _ := bustest.Connect(t, f.env.Server.ClientURL())
	reg := workers.NewRegistry()
	reg.Register(kind, h)
	w, err := workers.New(nc, workers.Config{
		Bus: f.env.Config, Kinds: []sluicev1.StageKind{kind}, ID: id, Concurrency: 1,
		WorkDir: testdir.Reachable(t), CacheDir: t.TempDir(), Grace: grace,
		Logger: slog.New(slog.DiscardHandler), Registry: reg,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("worker %s: %v", id, err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func (f *fleet) publish(t testing.TB, task *sluicev1.Task) {
	t.Helper()
	task.SourceDigest = f.digest
	data, err := proto.Marshal(task)
	if err != nil {
		t.Fatal(err)
	}
	msg := nats.NewMsg(f.env.Config.Names.Task(kind.Slug(), workers.DefaultPool, task.GetRunId()))
	msg.Data = data
	msg.Header.Set(jetstream.MsgIDHeader, bus.TaskMsgID(task.GetRunId(), task.GetStage(), task.GetAttempt(), task.GetShardIndex(), task.GetShardCount()))
	if _, err := f.env.JS.PublishMsg(t.Context(), msg); err != nil {
		t.Fatalf("publish task: %v", err)
	}
}

// finals waits for n final results of run.
func (f *fleet) finals(t testing.TB, run string, n int) []*sluicev1.Result {
	t.Helper()
	cons, err := f.env.JS.OrderedConsumer(t.Context(), f.env.Config.Names.ResultsStream(),
		jetstream.OrderedConsumerConfig{FilterSubjects: []string{f.env.Config.Names.RunResults(run)}})
	if err != nil {
		t.Fatal(err)
	}
	var got []*sluicev1.Result
	deadline := time.Now().Add(waitLimit)
	for len(got) < n {
		if time.Now().After(deadline) {
			t.Fatalf("run %s: %d of %d final results", run, len(got), n)
		}
		msg, err := cons.Next(jetstream.FetchMaxWait(500 * time.Millisecond))
		if err != nil {
			continue
		}
		r := &sluicev1.Result{}
		if err := proto.Unmarshal(msg.Data(), r); err != nil {
			t.Fatal(err)
		}
		if r.GetPhase() == sluicev1.ResultPhase_RESULT_PHASE_FINAL {
			got = append(got, r)
		}
	}
	return got
}

func task(run string, shard, shards int32, spec *sluicev1.StageSpec) *sluicev1.Task {
	spec.Name, spec.Kind = "e2e", kind
	return &sluicev1.Task{RunId: run, Pipeline: "web", Stage: "e2e", Kind: kind, Pool: workers.DefaultPool,
		Attempt: 1, ShardIndex: shard, ShardCount: shards, Spec: spec}
}

// TestShards runs six journeys as three shards on two workers: every journey runs exactly
// once, and the shards' results together cover the suite.
func TestShards(t *testing.T) {
	needBrowser(t)
	site := shopSite(t)
	f := newFleet(t)
	f.startWorker(t, "w1")
	f.startWorker(t, "w2")
	for i := range int32(3) {
		f.publish(t, task("shards", i, 3, &sluicev1.StageSpec{E2E: &sluicev1.E2ESpec{BaseUrl: site.URL, Journeys: []string{"journeys/*.yaml"}}}))
	}
	var ran []string
	for _, r := range f.finals(t, "shards", 3) {
		if r.GetOutcome() != sluicev1.Outcome_OUTCOME_PASSED {
			t.Errorf("shard %d: %s %s", r.GetShardIndex(), r.GetOutcome(), r.GetMessage())
		}
		mine := strings.Split(r.GetDetail()["journeys"], ",")
		if len(mine) != 2 {
			t.Errorf("shard %d ran %v, want 2 journeys", r.GetShardIndex(), mine)
		}
		ran = append(ran, mine...)
	}
	slices.Sort(ran)
	want := []string{"journeys/shop-1.yaml", "journeys/shop-2.yaml", "journeys/shop-3.yaml", "journeys/shop-4.yaml", "journeys/shop-5.yaml", "journeys/shop-6.yaml"}
	if !slices.Equal(ran, want) {
		t.Errorf("journeys run %v, want each of %v once", ran, want)
	}
}

// TestFailingJourney: the failed step becomes a finding at its file and line, and its
// screenshot and the JUnit report are stored as artifacts.
func TestFailingJourney(t *testing.T) {
	needBrowser(t)
	site := shopSite(t)
	f := newFleet(t)
	f.startWorker(t, "w1")
	f.publish(t, task("failing", 0, 1, &sluicev1.StageSpec{E2E: &sluicev1.E2ESpec{BaseUrl: site.URL, Journeys: []string{"failing/*.yaml"}}}))
	r := f.finals(t, "failing", 1)[0]
	if r.GetOutcome() != sluicev1.Outcome_OUTCOME_FAILED || !strings.Contains(r.GetMessage(), "1 of 2 journeys failed") {
		t.Fatalf("%s: %s", r.GetOutcome(), r.GetMessage())
	}
	if len(r.GetFindings()) != 1 {
		t.Fatalf("findings %v", r.GetFindings())
	}
	if fd := r.GetFindings()[0]; fd.GetFile() != "failing/wrong-title.yaml" || fd.GetLine() != 4 || fd.GetProperties()["step"] != "2" {
		t.Errorf("finding %v, want failing/wrong-title.yaml:4 step 2", fd)
	}
	store, err := f.env.JS.ObjectStore(t.Context(), f.env.Config.Names.ArtifactsStore())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, a := range r.GetArtifacts() {
		names = append(names, a.GetName())
		obj, err := store.Get(t.Context(), a.GetObject())
		if err != nil {
			t.Fatalf("artifact %s: %v", a.GetObject(), err)
		}
		data, err := io.ReadAll(obj)
		if err != nil || int64(len(data)) != a.GetSize() {
			t.Errorf("artifact %s: %d bytes, %v; ref says %d", a.GetName(), len(data), err, a.GetSize())
		}
	}
	for _, want := range []string{"screenshots/failing/wrong-title/02-expect_text-failed.png", "junit.xml"} {
		if !slices.Contains(names, want) {
			t.Errorf("artifacts %v lack %s", names, want)
		}
	}
}

// TestRunSuite: a `run:` suite's JUnit report decides the outcome, even when the command
// exits 0.
func TestRunSuite(t *testing.T) {
	f := newFleet(t)
	f.startWorker(t, "w1")
	report := `<testsuites><testsuite name="pw"><testcase name="login" classname="auth.spec.ts"/><testcase name="pay" classname="pay.spec.ts"><failure message="expected 201, got 500"/></testcase></testsuite></testsuites>`
	f.publish(t, task("suite", 0, 1, &sluicev1.StageSpec{Run: []string{"mkdir -p out && printf '%s' '" + report + "' > out/results.xml"}}))
	r := f.finals(t, "suite", 1)[0]
	if r.GetOutcome() != sluicev1.Outcome_OUTCOME_FAILED || !strings.Contains(r.GetMessage(), "2 tests, 1 failed (JUnit: out/results.xml)") {
		t.Fatalf("%s: %s", r.GetOutcome(), r.GetMessage())
	}
	if len(r.GetFindings()) != 1 || !strings.Contains(r.GetFindings()[0].GetMessage(), "pay.spec.ts pay: expected 201, got 500") {
		t.Errorf("findings %v", r.GetFindings())
	}
}

func TestBadJourneyGlob(t *testing.T) {
	if _, err := Expand(t.TempDir(), []string{"../x/*.yaml"}); err == nil {
		t.Error("a glob out of the tree is accepted")
	}
	if _, err := Expand(t.TempDir(), []string{"e2e/*.yaml"}); err == nil || !strings.Contains(err.Error(), "matched no file") {
		t.Errorf("empty glob: %v", err)
	}
}

// Shards split the journey files longest first by their recorded durations, not by name:
// with shop-1 recorded at 5 s and the others at 1 s, one shard runs shop-1 alone and the
// other the rest. Every shard's journeys are then recorded as they took, and its test
// counts are labelled with its 1-based number.
func TestShardsSplitByRecordedTimings(t *testing.T) {
	needBrowser(t)
	site := shopSite(t)
	f := newFleet(t)
	kv, err := f.env.JS.KeyValue(t.Context(), f.env.Config.Names.TimingsBucket())
	if err != nil {
		t.Fatal(err)
	}
	handler.Timings = kv
	t.Cleanup(func() { handler.Timings = nil })
	recorded := map[string]string{"journeys/shop-1.yaml": "5000"}
	for i := 2; i <= 6; i++ {
		recorded[fmt.Sprintf("journeys/shop-%d.yaml", i)] = "1000"
	}
	for file, ms := range recorded {
		if _, err := kv.Put(t.Context(), testkind.TimingKey("web", "e2e", file), []byte(ms)); err != nil {
			t.Fatal(err)
		}
	}
	f.startWorker(t, "w1")
	f.startWorker(t, "w2")
	for i := range int32(2) {
		f.publish(t, task("timed", i, 2, &sluicev1.StageSpec{E2E: &sluicev1.E2ESpec{BaseUrl: site.URL, Journeys: []string{"journeys/*.yaml"}}}))
	}
	want := map[int32]string{
		0: "journeys/shop-1.yaml",
		1: "journeys/shop-2.yaml,journeys/shop-3.yaml,journeys/shop-4.yaml,journeys/shop-5.yaml,journeys/shop-6.yaml",
	}
	for _, r := range f.finals(t, "timed", 2) {
		if r.GetOutcome() != sluicev1.Outcome_OUTCOME_PASSED {
			t.Errorf("shard %d: %s %s", r.GetShardIndex()+1, r.GetOutcome(), r.GetMessage())
		}
		if got := r.GetDetail()["journeys"]; got != want[r.GetShardIndex()] {
			t.Errorf("shard %d/2 ran %s, want %s", r.GetShardIndex()+1, got, want[r.GetShardIndex()])
		}
		i := slices.IndexFunc(r.GetMetrics(), func(m *sluicev1.Metric) bool { return m.GetName() == "tests" })
		if wantShard := fmt.Sprintf("%d/2", r.GetShardIndex()+1); i < 0 || r.GetMetrics()[i].GetLabels()["shard"] != wantShard {
			t.Errorf("shard %d/2's metrics %v, want a tests count labelled shard %s", r.GetShardIndex()+1, r.GetMetrics(), wantShard)
		}
	}
	for file, before := range recorded {
		e, err := kv.Get(t.Context(), testkind.TimingKey("web", "e2e", file))
		if err != nil {
			t.Fatalf("timing of %s: %v", file, err)
		}
		// Changed and a duration; not bounded above: a loaded machine's Chromium takes
		// seconds over a journey.
		if ms, err := strconv.Atoi(string(e.Value())); err != nil || string(e.Value()) == before || ms < 0 {
			t.Errorf("timing of %s is %q (was %s), want what the journey took", file, e.Value(), before)
		}
	}
}

// TestHandBack stops a worker in the middle of a journey: its task goes back to the queue
// and another worker runs it to the end.
func TestHandBack(t *testing.T) {
	needBrowser(t)
	var mu sync.Mutex
	first := true
	reached := make(chan struct{})
	release := make(chan struct{})
	site := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		hang := first && r.URL.Path == "/"
		first = first && !hang
		mu.Unlock()
		if hang {
			close(reached)
			select {
			case <-release:
			case <-r.Context().Done():
			}
			return
		}
		fmt.Fprint(w, `<!doctype html><h1>Shop</h1><button id="buy">Buy</button><p id="out"></p><script>buy.onclick = () => out.textContent = "Bought"</script>`)
	}))
	t.Cleanup(func() {
		close(release)
		site.Close()
	})
	f := newFleet(t)
	stop1 := f.startWorkerWith(t, "w1", handler, 100*time.Millisecond)
	f.publish(t, task("handback", 0, 1, &sluicev1.StageSpec{E2E: &sluicev1.E2ESpec{BaseUrl: site.URL, Journeys: []string{"journeys/shop-1.yaml"}}}))
	select {
	case <-reached:
	case <-time.After(waitLimit):
		t.Fatal("the journey never reached the page")
	}
	stop1()
	f.startWorker(t, "w2")
	r := f.finals(t, "handback", 1)[0]
	if r.GetOutcome() != sluicev1.Outcome_OUTCOME_PASSED || r.GetWorker() != "w2" || r.GetDelivery() != 2 {
		t.Errorf("%s by %s (delivery %d): %s; want PASSED by w2 on delivery 2", r.GetOutcome(), r.GetWorker(), r.GetDelivery(), r.GetMessage())
	}
}
