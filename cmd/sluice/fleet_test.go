package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/sluice-ci/sluice/internal/bus"
)

// startTestFleet starts an in-process fleet (real NATS server, coordinator, workers of kinds)
// as `sluice dev` does, and returns its NATS URL. It stops when the test ends.
func startTestFleet(t *testing.T, kinds string) string {
	t.Helper()
	return startPrefixedFleet(t, kinds, bus.DefaultPrefix)
}

func startPrefixedFleet(t *testing.T, kinds, prefix string) string {
	t.Helper()
	ks, err := parseKinds(kinds)
	if err != nil {
		t.Fatal(err)
	}
	a := &app{stdout: io.Discard, stderr: io.Discard, log: discardLogger(), prefix: prefix}
	f, err := a.startFleet(t.Context(), fleetOptions{
		dataDir:     t.TempDir(),
		natsListen:  "127.0.0.1:-1",
		httpAddr:    "127.0.0.1:0",
		kinds:       ks,
		pool:        "default",
		concurrency: 2,
	})
	if err != nil {
		t.Fatalf("start fleet: %v", err)
	}
	watchTestFleet(t, f)
	return f.natsURL
}

// watchTestFleet shuts f down when the test ends, and fails the test as soon as a part of
// the fleet stops on its own: shutting the fleet down ends the commands waiting on it
// (`sluice run` following a run no worker will take) instead of leaving them to the test's
// timeout.
func watchTestFleet(t *testing.T, f *fleet) {
	t.Helper()
	t.Cleanup(func() {
		if err := f.shutdown(); err != nil {
			t.Errorf("fleet shutdown: %v", err)
		}
	})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		if err := f.wait(t.Context()); err != nil && t.Context().Err() == nil {
			t.Errorf("the test fleet broke, so it was shut down: %v", err)
			_ = f.shutdown()
		}
	}()
	// Runs before the shutdown above: the test's context has ended, so the watch returns
	// without reading the parts' ends the shutdown causes.
	t.Cleanup(func() { <-watched })
}

// Two fleets on one data directory would share, and corrupt, one JetStream store: the
// second `sluice dev` refuses to start, naming the directory and what to do.
func TestDevRefusesADataDirectoryInUse(t *testing.T) {
	dir := t.TempDir()
	a := &app{stdout: io.Discard, stderr: io.Discard, log: discardLogger(), prefix: bus.DefaultPrefix}
	f, err := a.startFleet(t.Context(), fleetOptions{dataDir: dir, natsListen: "127.0.0.1:-1", pool: "default", concurrency: 1})
	if err != nil {
		t.Fatal(err)
	}
	code, _, stderr := cli(t, "dev", "--data", dir, "--nats-listen", "127.0.0.1:-1", "--http", "", "--workers", "none")
	if code != exitUsage || !strings.Contains(stderr, "data directory "+dir+" is in use") || !strings.Contains(stderr, "--data") {
		t.Fatalf("a second dev on %s: exit %d, stderr:\n%s", dir, code, stderr)
	}
	if err := f.shutdown(); err != nil {
		t.Fatal(err)
	}
	// Once the first is gone, the directory is free again.
	f, err = a.startFleet(t.Context(), fleetOptions{dataDir: dir, natsListen: "127.0.0.1:-1", pool: "default", concurrency: 1})
	if err != nil {
		t.Fatalf("after the first fleet stopped: %v", err)
	}
	_ = f.shutdown()
}

var runIDLine = regexp.MustCompile(`(?m)^run (\S+): `)

// runID is the id `sluice run` prints on its first line.
func runID(t *testing.T, stdout string) string {
	t.Helper()
	m := runIDLine.FindStringSubmatch(stdout)
	if m == nil {
		t.Fatalf("no run id in:\n%s", stdout)
	}
	return m[1]
}

// hasLine reports whether some line of out has every field, in order.
func hasLine(out string, fields ...string) bool {
	pattern := `(?m)^.*` + regexp.QuoteMeta(fields[0])
	for _, f := range fields[1:] {
		pattern += `\s+.*` + regexp.QuoteMeta(f)
	}
	return regexp.MustCompile(pattern).MatchString(out)
}

func TestRunPassesAndIsInspectable(t *testing.T) {
	url := startTestFleet(t, "all")
	code, stdout, stderr := cli(t, "--nats", url, "run", "testdata/pass.yaml", "--source", "testdata/tree", "--ref", "main")
	if code != exitOK {
		t.Fatalf("run: exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	id := runID(t, stdout)
	for _, want := range [][]string{
		{"read", "started", "#1"}, {"read", "passed", "#1"},
		{"check", "passed", "#1"}, {"main-only", "passed", "#1"}, {"run", "passed"},
	} {
		if !hasLine(stdout, want...) {
			t.Errorf("run output has no line with %q:\n%s", want, stdout)
		}
	}

	t.Run("runs show", func(t *testing.T) {
		code, stdout, stderr := cli(t, "--nats", url, "runs", "show", id)
		if code != exitOK || !hasLine(stdout, "status", "passed") || !hasLine(stdout, "read", "static", "passed", "1") {
			t.Errorf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
		}
	})
	t.Run("runs show --json", func(t *testing.T) {
		code, stdout, _ := cli(t, "--nats", url, "runs", "show", id, "--json")
		var run struct {
			ID     string `json:"id"`
			Status string `json:"status"`
			Stages []struct{ Name, Status string }
		}
		if err := json.Unmarshal([]byte(stdout), &run); err != nil || code != exitOK {
			t.Fatalf("exit %d, %v:\n%s", code, err, stdout)
		}
		if run.ID != id || run.Status != "RUN_STATUS_PASSED" || len(run.Stages) != 3 {
			t.Errorf("got %+v", run)
		}
	})
	t.Run("runs list", func(t *testing.T) {
		code, stdout, _ := cli(t, "--nats", url, "runs", "list")
		if code != exitOK || !hasLine(stdout, id, "pass", "passed", "main", "3/3 passed") {
			t.Errorf("exit %d:\n%s", code, stdout)
		}
	})
	t.Run("logs", func(t *testing.T) {
		code, stdout, stderr := cli(t, "--nats", url, "logs", id, "read")
		if code != exitOK || !strings.Contains(stdout, "hello from the source tree\n") {
			t.Errorf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
		}
	})
	t.Run("events", func(t *testing.T) {
		code, stdout, _ := cli(t, "--nats", url, "events", "--run", id)
		if code != exitOK || !hasLine(stdout, "pass", id, "run.submitted") || !hasLine(stdout, id, "stage.passed", "check", "attempt 1") || !hasLine(stdout, id, "run.passed") {
			t.Errorf("exit %d:\n%s", code, stdout)
		}
	})
	t.Run("events --json --type", func(t *testing.T) {
		code, stdout, _ := cli(t, "--nats", url, "events", "--run", id, "--type", "stage.passed", "--json")
		lines := strings.Split(strings.TrimSpace(stdout), "\n")
		if code != exitOK || len(lines) != 3 {
			t.Fatalf("exit %d, want 3 stage.passed events:\n%s", code, stdout)
		}
		stages := map[string]bool{}
		for _, l := range lines {
			var ev struct{ Type, Stage, RunID string }
			if err := json.Unmarshal([]byte(l), &ev); err != nil {
				t.Fatalf("%v: %s", err, l)
			}
			if ev.Type != "stage.passed" {
				t.Errorf("type %q in %s", ev.Type, l)
			}
			stages[ev.Stage] = true
		}
		if !stages["read"] || !stages["check"] || !stages["main-only"] {
			t.Errorf("stages %v", stages)
		}
	})
	t.Run("cancel a passed run", func(t *testing.T) {
		code, _, stderr := cli(t, "--nats", url, "cancel", id)
		if code != exitFailed || !strings.Contains(stderr, "already passed") {
			t.Errorf("exit %d, want %d:\n%s", code, exitFailed, stderr)
		}
	})
	t.Run("logs of an unknown stage", func(t *testing.T) {
		code, _, stderr := cli(t, "--nats", url, "logs", id, "nope")
		if code != exitFailed || !strings.Contains(stderr, `no output stored for stage "nope"`) {
			t.Errorf("exit %d:\n%s", code, stderr)
		}
	})
}

func TestRunRefSkipsMainOnlyStage(t *testing.T) {
	url := startTestFleet(t, "all")
	// A tree outside any checkout: --ref names the branch it is for.
	code, stdout, stderr := cli(t, "--nats", url, "run", "testdata/pass.yaml", "--source", copyTree(t, "testdata/tree"), "--ref", "feature/x")
	if code != exitOK || !hasLine(stdout, "main-only", "skipped") || !hasLine(stdout, "run", "passed") {
		t.Errorf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
}

func TestRunFailsAndPrintsTheLogs(t *testing.T) {
	url := startTestFleet(t, "all")
	code, stdout, stderr := cli(t, "--nats", url, "run", "testdata/fail.yaml", "--no-source", "--ref", "main")
	if code != exitFailed {
		t.Errorf("exit %d, want %d", code, exitFailed)
	}
	for _, want := range [][]string{{"broken", "failed", "#1"}, {"| line one of the failure"}, {"| the tool said no"}, {"run", "failed"}} {
		if !hasLine(stdout, want...) {
			t.Errorf("no line with %q in:\n%s", want, stdout)
		}
	}
	id := runID(t, stdout)
	if !strings.Contains(stderr, "run "+id+" failed") || !strings.Contains(stderr, "sluice runs show "+id) {
		t.Errorf("stderr does not say the run failed and where to look:\n%s", stderr)
	}
}

func TestRunsShowUnknownID(t *testing.T) {
	url := startTestFleet(t, "none")
	code, _, stderr := cli(t, "--nats", url, "runs", "show", "no-such-run")
	if code != exitFailed || !strings.Contains(stderr, `run "no-such-run" not found`) {
		t.Errorf("exit %d:\n%s", code, stderr)
	}
	code, _, stderr = cli(t, "--nats", url, "cancel", "no-such-run")
	if code != exitFailed || !strings.Contains(stderr, "not found") {
		t.Errorf("cancel: exit %d:\n%s", code, stderr)
	}
}

func TestRunWithoutCoordinatorExits3(t *testing.T) {
	// A server that is up, but no coordinator on it.
	e := startBareServer(t)
	code, _, stderr := cli(t, "--nats", e, "run", "testdata/good.yaml", "--no-source", "--ref", "main")
	if code != exitUnreachable || !strings.Contains(stderr, "no coordinator") {
		t.Errorf("exit %d, want %d:\n%s", code, exitUnreachable, stderr)
	}
}

// startBareServer starts a provisioned NATS server with nothing else on it.
func startBareServer(t *testing.T) string {
	t.Helper()
	e, err := bus.StartEmbedded(t.Context(), bus.EmbeddedOptions{DataDir: t.TempDir(), Listen: "127.0.0.1:-1", Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Shutdown)
	a := &app{stdout: io.Discard, stderr: io.Discard, log: discardLogger(), prefix: bus.DefaultPrefix, natsURL: e.ClientURL()}
	c, err := a.connect(t.Context(), t.Name())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := bus.Provision(t.Context(), c.js, bus.Config{Names: c.names}.WithDefaults()); err != nil {
		t.Fatal(err)
	}
	return e.ClientURL()
}

// signalWriter collects output and closes seen once it contains want.
type signalWriter struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	want string
	seen chan struct{}
	once sync.Once
}

func (w *signalWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n, err := w.buf.Write(p)
	if strings.Contains(w.buf.String(), w.want) {
		w.once.Do(func() { close(w.seen) })
	}
	return n, err
}

func (w *signalWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

func TestDetachCancelAndInterrupt(t *testing.T) {
	url := startTestFleet(t, "all")
	slow := t.TempDir() + "/slow.yaml"
	writeFile(t, slow, "version: 1\nname: slow\nstages:\n  wait: {kind: static, run: [\"echo waiting; sleep 300\"]}\n")

	// --detach prints the id alone, for scripts.
	code, stdout, stderr := cli(t, "--nats", url, "run", slow, "--no-source", "--ref", "main", "--detach")
	id := strings.TrimSpace(stdout)
	if code != exitOK || id == "" || strings.Contains(id, " ") {
		t.Fatalf("detach: exit %d, stdout %q, stderr:\n%s", code, stdout, stderr)
	}

	// Ctrl-C while following stops following, not the run.
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	out := &signalWriter{want: "wait", seen: make(chan struct{})}
	var errb bytes.Buffer
	done := make(chan int, 1)
	go func() { done <- execute(ctx, []string{"--nats", url, "events", "--run", id, "--follow"}, out, &errb) }()
	<-out.seen
	cancel()
	if code := <-done; code != exitOK {
		t.Errorf("events --follow interrupted: exit %d, stderr:\n%s", code, errb.String())
	}

	ctx2, cancel2 := context.WithCancel(t.Context())
	defer cancel2()
	out2 := &signalWriter{want: "started", seen: make(chan struct{})}
	var errb2 bytes.Buffer
	go func() {
		done <- execute(ctx2, []string{"--nats", url, "run", slow, "--no-source", "--ref", "main"}, out2, &errb2)
	}()
	<-out2.seen
	cancel2()
	if code := <-done; code != exitInterrupted {
		t.Errorf("run interrupted: exit %d, want %d", code, exitInterrupted)
	}
	id2 := runID(t, out2.String())
	if !strings.Contains(errb2.String(), "run "+id2+" continues") || !strings.Contains(errb2.String(), "sluice cancel "+id2) {
		t.Errorf("the interrupt note does not say the run continues and how to cancel it:\n%s", errb2.String())
	}

	for _, run := range []string{id, id2} {
		code, stdout, stderr := cli(t, "--nats", url, "cancel", run, "--reason", "test over")
		if code != exitOK || !strings.Contains(stdout, "is cancelled") {
			t.Errorf("cancel %s: exit %d\nstdout:\n%s\nstderr:\n%s", run, code, stdout, stderr)
		}
	}
	// Cancelling is idempotent.
	if code, stdout, stderr := cli(t, "--nats", url, "cancel", id); code != exitOK || !strings.Contains(stdout, "is cancelled") {
		t.Errorf("cancel twice: exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
}

func TestDemo(t *testing.T) {
	data := filepath.Join(t.TempDir(), "demo")
	code, stdout, stderr := cli(t, "demo", "--example", "../../examples", "--data", data, "--keep-data")
	if code != exitOK {
		t.Fatalf("demo: exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	for _, stage := range []string{"lint", "typecheck", "test", "governance", "backup-verify", "contract", "e2e", "load", "deploy-gate"} {
		if !hasLine(stdout, stage, "passed", "1") {
			t.Errorf("summary has no passed line for %s:\n%s", stage, stdout)
		}
	}
	if !strings.Contains(stdout, "demo passed: 9 stages: 9 passed") {
		t.Errorf("no summary line:\n%s", stdout)
	}
	// The stages ran the product's engines: the test shards, the governance engine, and
	// backup verification of a real database, live and restored.
	for _, want := range [][]string{
		{"test", "passed", "across 2 shards"},
		{"governance", "passed", "governance: no findings at or above high"},
		{"backup-verify", "passed", "verify: 2 tables match the baseline;", "restore-verify: the dump restores"},
		{"governance", "governance.sarif,", "governance.junit.xml"},
		{"backup-verify", "backup-verify/report.txt,", "backup-verify/verify.json,", "backup-verify/restore-verify.json"},
	} {
		if !hasLine(stdout, want...) {
			t.Errorf("no line with %q in:\n%s", want, stdout)
		}
	}
	for _, want := range [][]string{
		{"deploy-gate", "shifted", "canary at 10%"}, {"deploy-gate", "shifted", "canary at 50%"},
		{"deploy-gate", "promoted", "canary at 100%"}, {"rollout of deploy-gate: promoted"},
		{"error_rate", "max_ratio_to_baseline", "healthy"}, {"green now gets 100%"},
	} {
		if !hasLine(stdout, want...) {
			t.Errorf("no line with %q in:\n%s", want, stdout)
		}
	}
	checkDemoEvidence(t, data)
}

// The bad canary fails 5% of its requests: the first analysis at 10% catches it, the traffic
// goes back to blue, and the demo says so and exits 0 (the outcome it promised).
func TestDemoBadCanaryIsRolledBack(t *testing.T) {
	code, stdout, stderr := cli(t, "demo", "--example", "../../examples", "--bad-canary")
	if code != exitOK {
		t.Fatalf("demo --bad-canary: exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	for _, want := range [][]string{
		{"deploy-gate", "verdict", "unhealthy at 10%"}, {"deploy-gate", "rolled_back", "10% -> 0%"},
		{"rollout of deploy-gate: rolled back, canary at 0%"}, {"green now gets 0%"},
		{"rolled back, as expected"}, {"evidence: rolled_back of deploy-gate signed and verified"},
	} {
		if !hasLine(stdout, want...) {
			t.Errorf("no line with %q in:\n%s", want, stdout)
		}
	}
}

// A migration that drops a column of the payments table is stopped at the governance gate:
// the finding names the file, table and column, nothing after it runs, and the demo exits 0
// (the outcome it promised).
func TestDemoBadMigrationIsCaughtAtGovernance(t *testing.T) {
	code, stdout, stderr := cli(t, "demo", "--example", "../../examples", "--bad-migration")
	if code != exitOK {
		t.Fatalf("demo --bad-migration: exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	for _, want := range [][]string{
		{"governance", "failed", "GOV-003"},
		{"high", "GOV-003", "DROP COLUMN currency of protected table payments"},
		{"backup-verify", "skipped", "needs governance"}, {"deploy-gate", "skipped"},
		{"the destructive migration was caught at app/db/migrations/0003_drop_currency.sql:2", "as expected"},
	} {
		if !hasLine(stdout, want...) {
			t.Errorf("no line with %q in:\n%s", want, stdout)
		}
	}
	if !strings.Contains(stdout, "GOV-003  app/db/migrations/0003_drop_currency.sql:2") {
		t.Errorf("the finding does not name the migration's file and line:\n%s", stdout)
	}
	if _, err := os.Stat("../../examples/app/db/migrations/0003_drop_currency.sql"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the bad migration was written into the example itself (%v); it belongs in a copy", err)
	}
}

// The example's stages really check the tree they fetch: an unformatted file fails lint.
func TestExampleCatchesUnformattedCode(t *testing.T) {
	url := startTestFleet(t, "all")
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS("../../examples/hello")); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "greet", "sloppy.go"), "package greet\nfunc  Sloppy( ) {}\n")
	code, stdout, stderr := cli(t, "--nats", url, "run", filepath.Join(dir, "pipeline.yaml"), "--ref", "main")
	if code != exitFailed {
		t.Errorf("exit %d, want %d; stderr:\n%s", code, exitFailed, stderr)
	}
	for _, want := range [][]string{{"lint", "failed"}, {"| not gofmt-formatted"}, {"| greet/sloppy.go"}, {"test", "skipped"}, {"run", "failed"}} {
		if !hasLine(stdout, want...) {
			t.Errorf("no line with %q in:\n%s", want, stdout)
		}
	}
}

// A prefix separates installations on one NATS account: clients see only their own.
func TestPrefixSeparatesInstallations(t *testing.T) {
	url := startPrefixedFleet(t, "all", "team-a")
	code, stdout, stderr := cli(t, "--nats", url, "--prefix", "team-a", "run", "testdata/good.yaml", "--no-source", "--ref", "main")
	if code != exitOK {
		t.Fatalf("run with the fleet's prefix: exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	if code, _, stderr := cli(t, "--nats", url, "runs", "list"); code != exitUnreachable || !strings.Contains(stderr, "sluice.api.runs.list") {
		t.Errorf("runs list with the default prefix: exit %d, want %d (no coordinator):\n%s", code, exitUnreachable, stderr)
	}
	if code, stdout, _ := cli(t, "--nats", url, "--prefix", "team-a", "events", "--type", "run.passed"); code != exitOK || !strings.Contains(stdout, "run.passed") {
		t.Errorf("events with the fleet's prefix: exit %d:\n%s", code, stdout)
	}
}
