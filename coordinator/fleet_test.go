package coordinator_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/sluice-ci/sluice/coordinator"
	"github.com/sluice-ci/sluice/internal/bus"
	"github.com/sluice-ci/sluice/internal/bus/bustest"
	"github.com/sluice-ci/sluice/internal/testdir"
	sluicev1 "github.com/sluice-ci/sluice/proto/sluice/v1"
	"github.com/sluice-ci/sluice/workers"
)

// fleet is a real coordinator and real workers on a real in-process server.
type fleet struct {
	env    *bustest.Env
	client *coordinator.Client
}

func startFleet(tb testing.TB, concurrency int, reg *workers.Registry) *fleet {
	tb.Helper()
	env := bustest.Start(tb, bus.Config{})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	tb.Cleanup(func() { cancel(); wg.Wait() })
	c, err := coordinator.New(env.NC, coordinator.Config{Names: env.Config.Names, Bus: env.Config, Logger: bustest.Logger()})
	if err != nil {
		tb.Fatal(err)
	}
	wg.Go(func() {
		if err := c.Run(ctx); err != nil {
			tb.Errorf("coordinator: %v", err)
		}
	})
	wc := workers.Config{
		Bus: env.Config, Concurrency: concurrency, Logger: bustest.Logger(), Registry: reg,
		CacheDir: tb.TempDir(), WorkDir: testdir.Reachable(tb),
	}
	if reg != nil {
		wc.Kinds = []sluicev1.StageKind{sluicev1.StageKind_STAGE_KIND_STATIC}
	}
	w, err := workers.New(env.NC, wc)
	if err != nil {
		tb.Fatal(err)
	}
	wg.Go(func() {
		if err := w.Run(ctx); err != nil {
			tb.Errorf("worker: %v", err)
		}
	})
	f := &fleet{env: env, client: coordinator.NewClient(env.NC, env.Config.Names)}
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := f.client.List(ctx, &sluicev1.ListRunsRequest{}); err == nil {
			return f
		}
		if time.Now().After(deadline) {
			tb.Fatal("coordinator API never answered")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (f *fleet) wait(tb testing.TB, id string) *sluicev1.RunState {
	tb.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		st, err := f.client.Get(context.Background(), id)
		if err == nil && st.GetStatus().Terminal() {
			return st
		}
		if time.Now().After(deadline) {
			tb.Fatalf("run %s did not finish: %v", id, st)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func runStage(name string, needs []string, script string) *sluicev1.StageSpec {
	return &sluicev1.StageSpec{
		Name: name, Kind: sluicev1.StageKind_STAGE_KIND_STATIC, Needs: needs, Run: []string{script},
		Shards: 1, Timeout: durationpb.New(time.Minute),
	}
}

// barrier is a step that proves two stages overlap: each marks its start and waits (up to
// 20 s) for its partner's mark, so it can only pass while the partner runs too.
func barrier(self, partner string) string {
	return fmt.Sprintf(`touch "$MARKS/%s"; i=0; while [ ! -e "$MARKS/%s" ]; do i=$((i+1)); [ $i -gt 2000 ] && echo "%s never overlapped %s" >&2 && exit 1; sleep 0.01; done`, self, partner, self, partner)
}

func TestFleetSevenStageDAGRunsParallelPairsConcurrently(t *testing.T) {
	f := startFleet(t, 2, nil)
	marks := testdir.Shared(t)
	spec := &sluicev1.PipelineSpec{Version: 1, Name: "seven", Env: map[string]string{"MARKS": marks}, Stages: []*sluicev1.StageSpec{
		runStage("lint", nil, barrier("lint", "typecheck")),
		runStage("typecheck", nil, barrier("typecheck", "lint")),
		runStage("test", []string{"lint", "typecheck"}, barrier("test", "governance")),
		runStage("governance", []string{"lint", "typecheck"}, barrier("governance", "test")),
		runStage("backup", []string{"test", "governance"}, barrier("backup", "e2e")),
		runStage("e2e", []string{"test", "governance"}, barrier("e2e", "backup")),
		runStage("deploy-gate", []string{"backup", "e2e"}, "echo deploying"),
	}}
	spec.Stages[6].When = &sluicev1.When{Branch: []string{"main"}}
	st, err := f.client.Submit(t.Context(), &sluicev1.SubmitRunRequest{Spec: spec, Ref: "main"})
	if err != nil {
		t.Fatal(err)
	}
	st = f.wait(t, st.GetId())
	if st.GetStatus() != sluicev1.RunStatus_RUN_STATUS_PASSED {
		for _, s := range st.GetStages() {
			t.Logf("%s: %s %s", s.GetName(), s.GetStatus().Short(), s.GetMessage())
		}
		t.Fatalf("run %s", st.GetStatus().Short())
	}
	events := storedEvents(t, f.env, st.GetId())
	want := []string{"run.submitted"}
	for _, s := range spec.GetStages() {
		for _, typ := range []string{"stage.queued", "stage.started", "stage.passed"} {
			want = append(want, typ+":"+s.GetName())
		}
	}
	want = append(want, "run.passed")
	slices.Sort(want)
	if got := events; !slices.Equal(got, want) {
		t.Fatalf("events\n got %v\nwant %v", got, want)
	}
}

// storedEvents lists a run's stored events as "type:stage", sorted.
func storedEvents(t *testing.T, env *bustest.Env, run string) []string {
	t.Helper()
	var out []string
	for _, msg := range bustest.Stored(t, env.JS, env.Config.Names.EventsStream(), env.Config.Names.EventFilter("", run)) {
		var ev sluicev1.Event
		if err := proto.Unmarshal(msg.Data(), &ev); err != nil {
			t.Fatal(err)
		}
		name := ev.GetType()
		if ev.GetStage() != "" {
			name += ":" + ev.GetStage()
		}
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

func TestFleetTimeoutsAndRetries(t *testing.T) {
	f := startFleet(t, 2, nil)
	dir := testdir.Shared(t)
	counter := filepath.Join(dir, "attempts")
	flaky := runStage("flaky", nil, fmt.Sprintf(`echo x >> %q; [ $(wc -l < %q) -ge 2 ]`, counter, counter))
	flaky.Retries = 2
	flaky.RetryBackoff = durationpb.New(50 * time.Millisecond)
	slow := runStage("slow", nil, "sleep 30")
	slow.Timeout = durationpb.New(500 * time.Millisecond)
	slow.Retries = 1
	slow.RetryBackoff = durationpb.New(10 * time.Millisecond)
	st, err := f.client.Submit(t.Context(), &sluicev1.SubmitRunRequest{Spec: &sluicev1.PipelineSpec{Version: 1, Name: "retry", Stages: []*sluicev1.StageSpec{flaky, slow}}})
	if err != nil {
		t.Fatal(err)
	}
	st = f.wait(t, st.GetId())
	byName := map[string]*sluicev1.StageState{}
	for _, s := range st.GetStages() {
		byName[s.GetName()] = s
	}
	if s := byName["flaky"]; s.GetStatus() != sluicev1.StageStatus_STAGE_STATUS_PASSED || s.GetAttempt() != 2 {
		t.Errorf("flaky: %s after %d attempts (%s), want passed on the 2nd", s.GetStatus().Short(), s.GetAttempt(), s.GetMessage())
	}
	s := byName["slow"]
	if s.GetStatus() != sluicev1.StageStatus_STAGE_STATUS_FAILED || s.GetAttempt() != 2 || s.GetShards()[0].GetOutcome() != sluicev1.Outcome_OUTCOME_TIMED_OUT {
		t.Errorf("slow: %s after %d attempts, outcome %s (%s); want failed, timed out twice", s.GetStatus().Short(), s.GetAttempt(), s.GetShards()[0].GetOutcome().Short(), s.GetMessage())
	}
	if st.GetStatus() != sluicev1.RunStatus_RUN_STATUS_FAILED {
		t.Errorf("run %s", st.GetStatus().Short())
	}
	if data, _ := os.ReadFile(counter); len(data) != 4 {
		t.Errorf("flaky ran %d times, want 2", len(data)/2)
	}
}

// On a 3-node cluster with every stream and bucket replicated 3 times, losing a node
// (possibly a stream leader) mid-run loses no run: leaders move, the planner retries.
func TestFleetOnAThreeNodeClusterSurvivesLosingANode(t *testing.T) {
	nodes := bustest.Cluster(t, 3)
	var urls []string
	for _, n := range nodes {
		urls = append(urls, n.ClientURL())
	}
	nc, js := bustest.Connect(t, strings.Join(urls, ","))
	cfg := bus.Config{Replicas: 3, AckWait: 2 * time.Second}.WithDefaults()
	if err := bus.Provision(t.Context(), js, cfg); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	c, err := coordinator.New(nc, coordinator.Config{Names: cfg.Names, Bus: cfg, Logger: bustest.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	wg.Go(func() { _ = c.Run(ctx) })
	w, err := workers.New(nc, workers.Config{Bus: cfg, Concurrency: 4, Logger: bustest.Logger(), CacheDir: t.TempDir(), WorkDir: testdir.Reachable(t),
		Kinds: []sluicev1.StageKind{sluicev1.StageKind_STAGE_KIND_STATIC}})
	if err != nil {
		t.Fatal(err)
	}
	wg.Go(func() { _ = w.Run(ctx) })
	<-c.Ready()
	client := coordinator.NewClient(nc, cfg.Names)
	spec := &sluicev1.PipelineSpec{Version: 1, Name: "ha", Stages: []*sluicev1.StageSpec{
		runStage("one", nil, "sleep 0.3"), runStage("two", []string{"one"}, "sleep 0.3"), runStage("three", []string{"two"}, "sleep 0.3"),
	}}
	var ids []string
	for range 5 {
		st, err := client.Submit(t.Context(), &sluicev1.SubmitRunRequest{Spec: spec})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, st.GetId())
	}
	time.Sleep(500 * time.Millisecond)
	// Stop a node this process is not connected to; its replicas (and any leaders) are lost.
	for _, n := range nodes {
		if n.ClientURL() != nc.ConnectedUrl() {
			n.Shutdown()
			break
		}
	}
	f := &fleet{client: client}
	for _, id := range ids {
		if st := f.wait(t, id); st.GetStatus() != sluicev1.RunStatus_RUN_STATUS_PASSED {
			t.Fatalf("run %s %s after losing a node: %s", id, st.GetStatus().Short(), st.GetMessage())
		}
	}
}
