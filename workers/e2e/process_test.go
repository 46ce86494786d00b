package e2e

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	engine "github.com/sluice-ci/sluice/e2e"
	"github.com/sluice-ci/sluice/internal/bus"
	"github.com/sluice-ci/sluice/internal/testdir"
	sluicev1 "github.com/sluice-ci/sluice/proto/sluice/v1"
	"github.com/sluice-ci/sluice/workers"
)

// The test binary re-executes itself as a worker process when childNATSEnv is set: a real
// separate process with its own browser, which a test can SIGKILL.
const (
	childNATSEnv = "SLUICE_E2E_TEST_WORKER_NATS"
	childIDEnv   = "SLUICE_E2E_TEST_WORKER_ID"
	childDirEnv  = "SLUICE_E2E_TEST_WORKER_DIR"
	// childAckWait is short so that a killed worker's task returns within the test.
	childAckWait = 2 * time.Second
)

// runChildWorker is the main of a worker process: it serves e2e tasks until SIGTERM.
func runChildWorker(url string) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	id, dir := os.Getenv(childIDEnv), os.Getenv(childDirEnv)
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	nc, err := bus.Connect(ctx, bus.ConnectOptions{URL: url, Name: id})
	if err != nil {
		log.Error("connect", "err", err)
		return 1
	}
	defer nc.Close()
	h := New(engine.Config{Logger: log})
	defer h.Close()
	reg := workers.NewRegistry()
	reg.Register(kind, h)
	w, err := workers.New(nc, workers.Config{
		Bus: bus.Config{AckWait: childAckWait}.WithDefaults(), Kinds: []sluicev1.StageKind{kind}, ID: id,
		Concurrency: 1, WorkDir: filepath.Join(dir, "work"), CacheDir: filepath.Join(dir, "cache"),
		Logger: log, Registry: reg,
	})
	if err != nil {
		log.Error("worker", "err", err)
		return 1
	}
	if err := w.Run(ctx); err != nil {
		log.Error("worker", "err", err)
		return 1
	}
	return 0
}

// startProcess starts a worker process; it is stopped with SIGTERM when the test ends.
func startProcess(t *testing.T, url, id string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childNATSEnv+"="+url, childIDEnv+"="+id, childDirEnv+"="+testdir.Reachable(t))
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start worker process %s: %v", id, err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	})
	return cmd
}

// TestKilledWorkerProcess runs 12 journeys as 3 shards on three worker processes and
// SIGKILLs the one running shard 1 in the middle of a journey: its task returns to the
// queue after AckWait and another process runs it, so every journey passes, each in
// exactly one final result.
func TestKilledWorkerProcess(t *testing.T) {
	needBrowser(t)
	var mu sync.Mutex
	hung := false
	reached := make(chan struct{})
	site := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		// j01 is the first journey of shard 1; its first load never answers.
		hang := !hung && r.URL.Query().Get("n") == "1"
		hung = hung || hang
		mu.Unlock()
		if hang {
			close(reached)
			<-r.Context().Done()
			return
		}
		fmt.Fprint(w, `<!doctype html><h1>Shop</h1><button id="buy">Buy</button><p id="out"></p><script>buy.onclick = () => out.textContent = "Bought"</script>`)
	}))
	t.Cleanup(site.Close)
	dir := t.TempDir()
	writeJourneys(t, dir, 12)
	f := newFleetAck(t, dir, childAckWait)
	procs := map[string]*exec.Cmd{}
	for i := range 3 {
		id := fmt.Sprintf("p%d", i)
		procs[id] = startProcess(t, f.env.Server.ClientURL(), id)
	}
	for s := range int32(3) {
		f.publish(t, task("killed", s, 3, &sluicev1.StageSpec{E2E: &sluicev1.E2ESpec{BaseUrl: site.URL, Journeys: []string{"journeys/*.yaml"}}}))
	}
	select {
	case <-reached:
	case <-time.After(waitLimit):
		t.Fatal("shard 1 never reached its first page")
	}
	victim := f.startedBy(t, "killed", 1)
	if err := procs[victim].Process.Kill(); err != nil {
		t.Fatalf("kill %s: %v", victim, err)
	}
	var ran []string
	for _, r := range f.finals(t, "killed", 3) {
		if r.GetOutcome() != sluicev1.Outcome_OUTCOME_PASSED {
			t.Errorf("shard %d: %s %s", r.GetShardIndex(), r.GetOutcome(), r.GetMessage())
		}
		if r.GetShardIndex() == 1 && (r.GetWorker() == victim || r.GetDelivery() < 2) {
			t.Errorf("shard 1 finished by %s on delivery %d; want another process on a redelivery", r.GetWorker(), r.GetDelivery())
		}
		ran = append(ran, strings.Split(r.GetDetail()["journeys"], ",")...)
	}
	slices.Sort(ran)
	var want []string
	for i := range 12 {
		want = append(want, fmt.Sprintf("journeys/j%02d.yaml", i))
	}
	if !slices.Equal(ran, want) {
		t.Errorf("journeys in final results %v, want each of %v once", ran, want)
	}
}

// writeJourneys writes n journeys journeys/jNN.yaml under dir, each on the page /?n=NN.
func writeJourneys(t testing.TB, dir string, n int) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(dir, "journeys"), 0o755); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		j := fmt.Sprintf("name: shop %d\nsteps:\n  - goto: /?n=%d\n  - click: \"#buy\"\n  - expect_text: {selector: \"#out\", text: Bought}\n", i, i)
		if err := os.WriteFile(filepath.Join(dir, "journeys", fmt.Sprintf("j%02d.yaml", i)), []byte(j), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// startedBy waits for the STARTED result of a shard and returns the worker that sent it.
func (f *fleet) startedBy(t *testing.T, run string, shard int32) string {
	t.Helper()
	cons, err := f.env.JS.OrderedConsumer(t.Context(), f.env.Config.Names.ResultsStream(),
		jetstream.OrderedConsumerConfig{FilterSubjects: []string{f.env.Config.Names.RunResults(run)}})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(waitLimit)
	for time.Now().Before(deadline) {
		msg, err := cons.Next(jetstream.FetchMaxWait(500 * time.Millisecond))
		if err != nil {
			continue
		}
		r := &sluicev1.Result{}
		if err := proto.Unmarshal(msg.Data(), r); err != nil {
			t.Fatal(err)
		}
		if r.GetPhase() == sluicev1.ResultPhase_RESULT_PHASE_STARTED && r.GetShardIndex() == shard {
			return r.GetWorker()
		}
	}
	t.Fatalf("no STARTED result for shard %d", shard)
	return ""
}
