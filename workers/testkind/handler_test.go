package testkind_test

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"maps"
	"os"
	osexec "os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/sluice-ci/sluice/coordinator"
	"github.com/sluice-ci/sluice/internal/bus"
	"github.com/sluice-ci/sluice/internal/bus/bustest"
	"github.com/sluice-ci/sluice/internal/junit"
	"github.com/sluice-ci/sluice/internal/source"
	"github.com/sluice-ci/sluice/internal/testdir"
	sluicev1 "github.com/sluice-ci/sluice/proto/sluice/v1"
	"github.com/sluice-ci/sluice/testreport"
	"github.com/sluice-ci/sluice/workers"
	"github.com/sluice-ci/sluice/workers/exec"
	"github.com/sluice-ci/sluice/workers/testkind"
)

// The fixture suite: six packages whose TestSleep takes a known time, chosen so that a
// split by name is lopsided (alpha, charlie, echo = 3.0 s | bravo, delta, foxtrot = 1.4 s)
// and a longest-first split is exact (alpha, foxtrot and bravo or delta = 2.2 s | charlie,
// echo and delta or bravo = 2.2 s).
var fixture = map[string]time.Duration{
	"example.com/suite/alpha":   1200 * time.Millisecond,
	"example.com/suite/bravo":   400 * time.Millisecond,
	"example.com/suite/charlie": 1000 * time.Millisecond,
	"example.com/suite/delta":   400 * time.Millisecond,
	"example.com/suite/echo":    800 * time.Millisecond,
	"example.com/suite/foxtrot": 600 * time.Millisecond,
}

// gocache is the build cache every run of the package's tests shares, so compiling the
// fixture is paid once and is not what the shards' wall times measure.
var gocache string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "sluice-testkind-gocache-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	gocache = dir
	flag.Parse()
	if !testing.Short() {
		// Compile the fixture's tests once up front, so run 1's wall times measure its
		// split too, not the standard library's compilation.
		warm := osexec.Command("go", "test", "-count=1", "-run", "^$", "./...")
		warm.Dir = filepath.Join("testdata", "suite")
		warm.Env = append(os.Environ(), "GOCACHE="+dir, "GOTOOLCHAIN=local", "GOFLAGS=-mod=mod")
		if out, err := warm.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "compile the fixture suite: %v\n%s", err, out)
			os.Exit(1)
		}
	}
	// The steps run as users of their own: the warm cache is theirs to use and add to.
	_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, _ error) error {
		if d != nil && d.IsDir() {
			return os.Chmod(p, 0o777)
		}
		return os.Chmod(p, 0o666)
	})
	code := m.Run()
	// The build cache holds read-only files; make them removable first.
	_ = filepath.WalkDir(dir, func(p string, _ os.DirEntry, _ error) error { _ = os.Chmod(p, 0o700); return nil })
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// rig is a real coordinator and a real test-kind worker (2 tasks at once) on a real
// in-process server, with the fixture suite uploaded as a source bundle.
type rig struct {
	env     *bustest.Env
	client  *coordinator.Client
	timings jetstream.KeyValue
	digest  string
}

func start(t *testing.T) *rig {
	t.Helper()
	env := bustest.Start(t, bus.Config{})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	names := env.Config.Names
	kv, err := env.JS.KeyValue(ctx, names.TimingsBucket())
	if err != nil {
		t.Fatal(err)
	}
	c, err := coordinator.New(env.NC, coordinator.Config{Names: names, Bus: env.Config, Logger: bustest.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	wg.Go(func() { _ = c.Run(ctx) })
	reg := workers.NewRegistry()
	testkind.Register(reg, kv)
	w, err := workers.New(env.NC, workers.Config{
		Names: names, Bus: env.Config, Kinds: []sluicev1.StageKind{testkind.Kind}, Concurrency: 2,
		Registry: reg, Logger: bustest.Logger(), CacheDir: t.TempDir(), WorkDir: testdir.Reachable(t),
		Secrets:          &workers.Secrets{Grants: []workers.SecretGrant{{Name: "LEAK_TOKEN"}}, LookupEnv: func(k string) (string, bool) { return leakToken, k == "LEAK_TOKEN" }},
		UnsafeSharedUser: os.Geteuid() != 0,
	})
	if err != nil {
		t.Fatal(err)
	}
	wg.Go(func() { _ = w.Run(ctx) })
	<-c.Ready()

	store, err := env.JS.ObjectStore(ctx, names.SourcesStore())
	if err != nil {
		t.Fatal(err)
	}
	digest, err := source.Upload(ctx, store, filepath.Join("testdata", "suite"), source.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	return &rig{env: env, client: coordinator.NewClient(env.NC, names), timings: kv, digest: digest}
}

// run submits the fixture suite as a 2-shard test stage and waits for the run to end.
func (r *rig) run(t *testing.T, extraEnv map[string]string) *sluicev1.RunState {
	t.Helper()
	env := map[string]string{
		testkind.UnitsEnv: "go list ./...",
		// A shared build cache: compiling is not the cost the split balances.
		"GOCACHE": gocache, "GOTOOLCHAIN": "local", "GOFLAGS": "-mod=mod",
	}
	for k, v := range extraEnv {
		env[k] = v
	}
	spec := &sluicev1.PipelineSpec{Version: 1, Name: "suite", Stages: []*sluicev1.StageSpec{{
		Name: "test", Kind: testkind.Kind, Shards: 2, Env: env, Timeout: durationpb.New(2 * time.Minute),
		// -p 1: a shard's wall time is the sum of its packages' times, what LPT balances.
		Run: []string{"go test -p 1 -count=1 -json $" + testkind.ShardUnitsEnv},
	}}}
	st, err := r.client.Submit(t.Context(), &sluicev1.SubmitRunRequest{Spec: spec, SourceDigest: r.digest})
	if err != nil {
		t.Fatal(err)
	}
	return r.wait(t, st.GetId())
}

func (r *rig) wait(t *testing.T, id string) *sluicev1.RunState {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		got, err := r.client.Get(t.Context(), id)
		if err == nil && got.GetStatus().Terminal() {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("run %s did not finish: %v", id, got)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// packagesRun counts, per package, the shards whose JUnit artifact holds it.
func (r *rig) packagesRun(t *testing.T, st *sluicev1.RunState) map[string]int {
	t.Helper()
	store, err := r.env.JS.ObjectStore(t.Context(), r.env.Config.Names.ArtifactsStore())
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	objects := map[string]string{}
	for _, a := range st.GetStages()[0].GetArtifacts() {
		objects[a.GetName()] = a.GetObject()
	}
	for i := range int32(2) {
		data, err := store.GetBytes(t.Context(), objects[testkind.JUnitArtifact(i)])
		if err != nil {
			t.Fatalf("shard %d's JUnit: %v", i, err)
		}
		rep, err := junit.Read(strings.NewReader(string(data)))
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]bool{}
		for _, c := range rep.Cases {
			if c.Name == "TestSleep" && c.Status == junit.Passed && !seen[c.Suite] {
				seen[c.Suite] = true
				counts[c.Suite]++
			}
		}
	}
	return counts
}

func shardWalls(t *testing.T, st *sluicev1.RunState) []time.Duration {
	t.Helper()
	stage := st.GetStages()[0]
	var walls []time.Duration
	for _, sh := range stage.GetShards() {
		if sh.GetStartedAt() == nil || sh.GetFinishedAt() == nil {
			t.Fatalf("shard %d without times: %v", sh.GetIndex(), sh)
		}
		walls = append(walls, sh.GetFinishedAt().AsTime().Sub(sh.GetStartedAt().AsTime()))
	}
	if len(walls) != 2 {
		t.Fatalf("%d shards, want 2", len(walls))
	}
	return walls
}

// Run 1 has no timings and splits by name (3.0 s against 1.4 s of the fixture's tests);
// it records every package's time, and run 2 splits by what was recorded: the split
// stored under SplitKey, which every shard of the attempt uses, is the longest-first
// split of the recorded timings, and it is more even by them than run 1's. Which
// packages pair up depends on the milliseconds go test measured, so the test derives
// the expected split from the stored timings rather than from the fixture.
func TestShardsBalanceByRecordedTimings(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go test on the fixture suite twice")
	}
	r := start(t)
	const byName = `{"shards":[["example.com/suite/alpha","example.com/suite/charlie","example.com/suite/echo"],["example.com/suite/bravo","example.com/suite/delta","example.com/suite/foxtrot"]]}`
	var splits [][][]string
	var recorded map[string]time.Duration
	for run := 1; run <= 2; run++ {
		st := r.run(t, nil)
		if st.GetStatus() != sluicev1.RunStatus_RUN_STATUS_PASSED {
			t.Fatalf("run %d: %s: %s", run, st.GetStatus(), st.GetStages()[0].GetMessage())
		}
		counts := r.packagesRun(t, st)
		for pkg := range fixture {
			if counts[pkg] != 1 {
				t.Errorf("run %d: %s ran on %d shards, want exactly 1 (%v)", run, pkg, counts[pkg], counts)
			}
		}
		if len(counts) != len(fixture) {
			t.Errorf("run %d: packages %v, want the fixture's %d", run, counts, len(fixture))
		}
		e, err := r.timings.Get(t.Context(), testkind.SplitKey(st.GetId(), "test", 1))
		if err != nil {
			t.Fatalf("run %d's stored split: %v", run, err)
		}
		if run == 1 && string(e.Value()) != byName {
			t.Errorf("run 1's split %s, want %s", e.Value(), byName)
		}
		var split struct{ Shards [][]string }
		if err := json.Unmarshal(e.Value(), &split); err != nil {
			t.Fatal(err)
		}
		splits = append(splits, split.Shards)
		if run == 2 {
			var units []testreport.Unit
			for _, pkg := range slices.Sorted(maps.Keys(fixture)) {
				units = append(units, testreport.Unit{Name: pkg, Duration: recorded[pkg], Known: true})
			}
			if want := testreport.Split(units, 2); !reflect.DeepEqual(split.Shards, want) {
				t.Errorf("run 2's split %v, want %v: the longest-first split of the recorded %v", split.Shards, want, recorded)
			}
		}
		recorded = r.recordedTimings(t)
		w := shardWalls(t, st)
		t.Logf("run %d: split %v, shard wall times %s and %s; %s", run, split.Shards, w[0].Round(time.Millisecond), w[1].Round(time.Millisecond), st.GetStages()[0].GetMessage())
	}
	for pkg, d := range fixture {
		if recorded[pkg] < d {
			t.Errorf("timing of %s = %s, want at least the fixture's %s", pkg, recorded[pkg], d)
		}
	}
	spread := func(shards [][]string) time.Duration {
		var loads []time.Duration
		for _, units := range shards {
			var load time.Duration
			for _, u := range units {
				load += recorded[u]
			}
			loads = append(loads, load)
		}
		return slices.Max(loads) - slices.Min(loads)
	}
	if by1, by2 := spread(splits[0]), spread(splits[1]); by2 >= by1 {
		t.Errorf("by the recorded timings run 2's shards are %s apart and run 1's %s: the timed split is no more even", by2, by1)
	}
}

// recordedTimings reads every fixture package's timing as the handler stored it.
func (r *rig) recordedTimings(t *testing.T) map[string]time.Duration {
	t.Helper()
	out := make(map[string]time.Duration, len(fixture))
	for pkg := range fixture {
		e, err := r.timings.Get(t.Context(), testkind.TimingKey("suite", "test", pkg))
		if err != nil {
			t.Fatalf("timing of %s: %v", pkg, err)
		}
		ms, err := strconv.ParseInt(string(e.Value()), 10, 64)
		if err != nil {
			t.Fatalf("timing of %s = %q: %v", pkg, e.Value(), err)
		}
		out[pkg] = time.Duration(ms) * time.Millisecond
	}
	return out
}

// A failed test fails the stage, and the stage's result names it.
func TestFailedTestIsNamed(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go test on the fixture suite")
	}
	r := start(t)
	st := r.run(t, map[string]string{"FAIL_ONE": "1"})
	stage := st.GetStages()[0]
	if st.GetStatus() != sluicev1.RunStatus_RUN_STATUS_FAILED {
		t.Fatalf("run %s: %s", st.GetStatus(), stage.GetMessage())
	}
	const name = "example.com/suite/charlie.TestMaybeFail"
	if !strings.Contains(stage.GetMessage(), "1 failed: "+name) {
		t.Errorf("stage message %q does not name %s", stage.GetMessage(), name)
	}
	i := slices.IndexFunc(stage.GetFindings(), func(f *sluicev1.Finding) bool {
		return f.GetRule() == testkind.RuleTestFailed && f.GetFile() == "example.com/suite/charlie" && f.GetMessage() == "TestMaybeFail failed"
	})
	if i < 0 {
		t.Fatalf("no finding for %s in %v", name, stage.GetFindings())
	}
	f := stage.GetFindings()[i]
	if f.GetSeverity() != sluicev1.Severity_SEVERITY_HIGH || !strings.Contains(f.GetExcerpt(), "FAIL_ONE is set") {
		t.Errorf("finding %v: want HIGH with the test's output", f)
	}
	if len(stage.GetFindings()) != 1 {
		t.Errorf("findings %v, want only the failed test", stage.GetFindings())
	}
}

// A runner that writes JUnit files (SLUICE_JUNIT) gets the same report: its failed test is
// named, and every test's duration is recorded under its name.
func TestJUnitFilesFromRunSteps(t *testing.T) {
	r := start(t)
	report := `<testsuite name="api"><testcase name="test_login" time="0.25"/>` +
		`<testcase name="test_logout" time="0.5"><failure message="expected 204, got 500">trace</failure></testcase></testsuite>`
	spec := &sluicev1.PipelineSpec{Version: 1, Name: "py", Stages: []*sluicev1.StageSpec{{
		Name: "test", Kind: testkind.Kind, Shards: 1, Timeout: durationpb.New(time.Minute),
		Env: map[string]string{testkind.JUnitEnv: "reports/*.xml"},
		Run: []string{"mkdir -p reports && printf '%s' '" + report + "' > reports/junit.xml && exit 1"},
	}}}
	st, err := r.client.Submit(t.Context(), &sluicev1.SubmitRunRequest{Spec: spec, SourceDigest: r.digest})
	if err != nil {
		t.Fatal(err)
	}
	st = r.wait(t, st.GetId())
	stage := st.GetStages()[0]
	if st.GetStatus() != sluicev1.RunStatus_RUN_STATUS_FAILED {
		t.Fatalf("run %s: %s", st.GetStatus(), stage.GetMessage())
	}
	if !strings.Contains(stage.GetMessage(), "1 JUnit suite, 2 tests, 1 failed: api.test_logout") {
		t.Errorf("stage message %q", stage.GetMessage())
	}
	if fs := stage.GetFindings(); len(fs) != 1 || fs[0].GetFile() != "api" || fs[0].GetMessage() != "test_logout failed" || fs[0].GetExcerpt() != "expected 204, got 500" {
		t.Errorf("findings %v", fs)
	}
	for name, want := range map[string]string{"test_login": "250", "test_logout": "500"} {
		e, err := r.timings.Get(t.Context(), testkind.TimingKey("py", "test", name))
		if err != nil || string(e.Value()) != want {
			t.Errorf("timing of %s: %v %v, want %s ms", name, e, err, want)
		}
	}
}

// leakToken has the characters `go test -json` escapes (& < >), so it shows in the output in
// a form other than itself.
const leakToken = "s3cr&t<token>-42"

// TestSecretsStayHiddenInReportsFindingsAndMessages: a test that prints its secret leaves it
// in `go test -json` (escaped), the JUnit artifact, the finding and the stage message; the
// worker masks it in every one.
func TestSecretsStayHiddenInReportsFindingsAndMessages(t *testing.T) {
	r := start(t)
	store, err := r.env.JS.ObjectStore(t.Context(), r.env.Config.Names.SourcesStore())
	if err != nil {
		t.Fatal(err)
	}
	digest, err := source.Upload(t.Context(), store, filepath.Join("testdata", "leak"), source.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	spec := &sluicev1.PipelineSpec{Version: 1, Name: "leak", Stages: []*sluicev1.StageSpec{{
		Name: "test", Kind: testkind.Kind, Shards: 1, Secrets: []string{"LEAK_TOKEN"}, Timeout: durationpb.New(2 * time.Minute),
		Env: map[string]string{"GOCACHE": gocache, "GOTOOLCHAIN": "local", "GOFLAGS": "-mod=mod"},
		Run: []string{"go test -count=1 -json ./..."},
	}}}
	st, err := r.client.Submit(t.Context(), &sluicev1.SubmitRunRequest{Spec: spec, SourceDigest: digest})
	if err != nil {
		t.Fatal(err)
	}
	st = r.wait(t, st.GetId())
	stage := st.GetStages()[0]
	if st.GetStatus() != sluicev1.RunStatus_RUN_STATUS_FAILED || len(stage.GetFindings()) == 0 {
		t.Fatalf("run %s, findings %v: %s", st.GetStatus(), stage.GetFindings(), stage.GetMessage())
	}
	leaks := func(where, s string) {
		t.Helper()
		for _, form := range exec.Forms([]string{leakToken}) {
			if strings.Contains(s, form) {
				t.Errorf("%s holds the secret as %q:\n%s", where, form, s)
			}
		}
	}
	leaks("the stage message", stage.GetMessage())
	for _, f := range stage.GetFindings() {
		leaks("a finding", f.GetMessage()+f.GetExcerpt())
	}
	if !strings.Contains(stage.GetFindings()[0].GetExcerpt(), exec.Mask) {
		t.Errorf("the finding's excerpt %q shows no mask where the secret was", stage.GetFindings()[0].GetExcerpt())
	}
	arts, err := r.env.JS.ObjectStore(t.Context(), r.env.Config.Names.ArtifactsStore())
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range stage.GetArtifacts() {
		data, err := arts.GetBytes(t.Context(), a.GetObject())
		if err != nil {
			t.Fatal(err)
		}
		leaks("artifact "+a.GetName(), string(data))
	}
	var logs strings.Builder
	for _, m := range bustest.Stored(t, r.env.JS, r.env.Config.Names.LogsStream(), r.env.Config.Names.Log(st.GetId(), "test")) {
		var c sluicev1.LogChunk
		if err := proto.Unmarshal(m.Data(), &c); err != nil {
			t.Fatal(err)
		}
		logs.Write(c.GetData())
	}
	if !strings.Contains(logs.String(), `\"Action\"`) && !strings.Contains(logs.String(), `"Action"`) {
		t.Fatalf("the logs do not hold the go test -json output:\n%s", logs.String())
	}
	leaks("the logs", logs.String())
}
