package workers

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/sluice-ci/sluice/internal/bus"
	"github.com/sluice-ci/sluice/internal/bus/bustest"
	"github.com/sluice-ci/sluice/internal/source"
	"github.com/sluice-ci/sluice/internal/testdir"
	sluicev1 "github.com/sluice-ci/sluice/proto/sluice/v1"
	"github.com/sluice-ci/sluice/workers/internal/proctest"
)

// A task that runs longer than StartedAfter reports STARTED, then the final result, then
// the worker acks: the results stream holds both in that order and the task leaves the
// work queue. One that ends sooner sends its final result alone, carrying its start.
func TestLifecycle(t *testing.T) {
	tests := []struct {
		name  string
		after time.Duration // StartedAfter
		step  string
		wants []string // result ids in the stream's order
	}{
		{"quicker than StartedAfter", 10 * time.Second, "echo hello", []string{"final"}},
		{"longer than StartedAfter", 50 * time.Millisecond, "sleep 0.5", []string{"started", "final"}},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			run := "r" + strconv.Itoa(i)
			h.publish(t, newTask(run, tc.step, `test "$SLUICE_STAGE" = build`))
			h.start(t, Config{ID: "w1", StartedAfter: tc.after})

			got := h.results(t, run, hasFinal)
			var ids []string
			for _, r := range got {
				ids = append(ids, strings.TrimPrefix(r.id, run+"/build/1/"))
				if r.RunId != run || r.Stage != "build" || r.Attempt != 1 || r.Worker != "w1" || r.Delivery != 1 {
					t.Errorf("result identity %+v", r.Result)
				}
			}
			if !slices.Equal(ids, tc.wants) {
				t.Fatalf("results %v, want %v", ids, tc.wants)
			}
			final := got[len(got)-1]
			if final.Phase != sluicev1.ResultPhase_RESULT_PHASE_FINAL || final.Outcome != sluicev1.Outcome_OUTCOME_PASSED || final.Message != "2 steps passed" {
				t.Errorf("final result %s %s %q", final.Phase, final.Outcome, final.Message)
			}
			if !final.FinishedAt.AsTime().After(final.StartedAt.AsTime()) || len(final.Metrics) != 2 {
				t.Errorf("final times %v..%v metrics %v", final.StartedAt, final.FinishedAt, final.Metrics)
			}
			if started := got[0]; len(got) == 2 {
				if started.Phase != sluicev1.ResultPhase_RESULT_PHASE_STARTED || !started.StartedAt.AsTime().Equal(final.StartedAt.AsTime()) {
					t.Errorf("first result %s started at %v, want STARTED at the final result's %v", started.Phase, started.StartedAt, final.StartedAt)
				}
			}
			h.waitQueueEmpty(t)
			if info := h.consumerInfo(t); info.NumAckPending != 0 || info.NumRedelivered != 0 {
				t.Errorf("consumer: %d ack pending, %d redelivered", info.NumAckPending, info.NumRedelivered)
			}
		})
	}
}

// A task running longer than AckWait is kept by the heartbeats: the free second slot
// never gets it. Without them the server redelivers it at AckWait, before it ends, and the
// step runs twice.
func TestHeartbeatKeepsLongTask(t *testing.T) {
	h := newHarness(t)
	ackWait := h.env.Config.AckWait
	runs := filepath.Join(testdir.Shared(t), "runs")
	h.publish(t, newTask("hb", fmt.Sprintf("echo run >> %s; sleep %.1f", runs, (ackWait+ackWait/2).Seconds())))
	h.start(t, Config{Concurrency: 2})
	res := h.final(t, "hb")
	if res.Outcome != sluicev1.Outcome_OUTCOME_PASSED || res.Delivery != 1 {
		t.Errorf("got %s delivery %d, want PASSED on the first delivery", res.Outcome, res.Delivery)
	}
	if b, err := os.ReadFile(runs); err != nil || string(b) != "run\n" {
		t.Errorf("the step ran %d times (%v), want once", strings.Count(string(b), "run"), err)
	}
}

func TestOutcomes(t *testing.T) {
	h := newHarness(t)
	tests := []struct {
		name    string
		task    func(*sluicev1.Task)
		steps   []string
		outcome sluicev1.Outcome
		msg     string
		exit    int32
	}{
		{"pass", nil, []string{"true", "echo ok"}, sluicev1.Outcome_OUTCOME_PASSED, "2 steps passed", 0},
		{"fail stops at the failing step", nil, []string{"true", "exit 1", "echo never"},
			sluicev1.Outcome_OUTCOME_FAILED, "step 2 `exit 1` exited 1", 1},
		{"timeout", func(t *sluicev1.Task) { t.Timeout = durationpb.New(300 * time.Millisecond) },
			[]string{"sleep 100"}, sluicev1.Outcome_OUTCOME_TIMED_OUT, "step 1 `sleep 100` timed out", anyExit},
		{"missing secret", func(t *sluicev1.Task) { t.Spec.Secrets = []string{"SLUICE_TEST_UNSET_SECRET"} },
			[]string{"true"}, sluicev1.Outcome_OUTCOME_ERROR, "SLUICE_TEST_UNSET_SECRET", 0},
		{"engine config without its engine", func(t *sluicev1.Task) { t.Spec.Contract = &sluicev1.ContractSpec{Target: "http://x"} },
			[]string{"true"}, sluicev1.Outcome_OUTCOME_ERROR, "`contract:`", 0},
		{"missing source bundle", func(t *sluicev1.Task) { t.SourceDigest = "sha256:" + strings.Repeat("0", 64) },
			[]string{"true"}, sluicev1.Outcome_OUTCOME_ERROR, "check out source sha256:0000", 0},
		{"kind of another consumer", func(t *sluicev1.Task) { t.Kind = sluicev1.StageKind_STAGE_KIND_TEST },
			[]string{"true"}, sluicev1.Outcome_OUTCOME_ERROR, "task of kind test delivered to the static consumer", 0},
	}
	for i, tc := range tests {
		task := newTask("out"+strconv.Itoa(i), tc.steps...)
		if tc.task != nil {
			tc.task(task)
		}
		h.publish(t, task)
	}
	h.start(t, Config{Concurrency: 4})
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := h.final(t, "out"+strconv.Itoa(i))
			if res.Outcome != tc.outcome || !strings.Contains(res.Message, tc.msg) {
				t.Errorf("got %s %q, want %s containing %q", res.Outcome, res.Message, tc.outcome, tc.msg)
			}
			if tc.exit != anyExit && res.ExitCode != tc.exit {
				t.Errorf("exit code %d, want %d", res.ExitCode, tc.exit)
			}
		})
	}
	h.waitQueueEmpty(t)
}

// A payload that does not decode is terminated with a warning; the worker keeps serving.
func TestUndecodableTaskTerminated(t *testing.T) {
	h := newHarness(t)
	subject := h.names.Task(static.Slug(), DefaultPool, "garbage")
	for _, payload := range [][]byte{
		{0xff, 0xff, 0xff, 0xff, 0x0f}, // not protobuf
		nil,                            // decodes, but names no run or stage
	} {
		if _, err := h.env.JS.Publish(t.Context(), subject, payload); err != nil {
			t.Fatal(err)
		}
	}
	h.publish(t, newTask("good", "true"))
	w := h.start(t, Config{})

	if res := h.final(t, "good"); res.Outcome != sluicev1.Outcome_OUTCOME_PASSED {
		t.Errorf("good task after garbage: %s %q", res.Outcome, res.Message)
	}
	w.logs.waitLine(t, "terminating a task that does not decode")
	h.waitQueueEmpty(t)
	if info := h.consumerInfo(t); info.NumRedelivered != 0 || info.NumAckPending != 0 {
		t.Errorf("garbage redelivered %d times, %d pending", info.NumRedelivered, info.NumAckPending)
	}
	results, err := h.env.JS.Stream(t.Context(), h.names.ResultsStream())
	if err != nil {
		t.Fatal(err)
	}
	if n := results.CachedInfo().State.Msgs; n != 1 {
		t.Errorf("%d results stored, want 1 (the good task's FINAL)", n)
	}
}

// With Concurrency 2 no more than two tasks run at once. Each step waits (bounded) for a
// partner, then records how many steps are running: 2 proves the slots are used, more
// would break the limit.
func TestConcurrencyLimit(t *testing.T) {
	h := newHarness(t)
	dir := testdir.Shared(t)
	running, counts := filepath.Join(dir, "running"), filepath.Join(dir, "counts")
	if err := os.Mkdir(running, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(running, 0o777); err != nil {
		t.Fatal(err)
	}
	step := strings.NewReplacer("RUNNING", running, "COUNTS", counts).Replace(
		`touch RUNNING/$SLUICE_RUN_ID; i=0; while [ $(ls RUNNING | wc -l) -lt 2 ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done; ` +
			`ls RUNNING | wc -l >> COUNTS; sleep 0.2; rm RUNNING/$SLUICE_RUN_ID`)
	const n = 6
	for i := range n {
		h.publish(t, newTask("c"+strconv.Itoa(i), step))
	}
	h.start(t, Config{Concurrency: 2})
	for i := range n {
		if res := h.final(t, "c"+strconv.Itoa(i)); res.Outcome != sluicev1.Outcome_OUTCOME_PASSED {
			t.Fatalf("task %d: %s %q", i, res.Outcome, res.Message)
		}
	}
	b, err := os.ReadFile(counts)
	if err != nil {
		t.Fatal(err)
	}
	var seen []int
	for f := range strings.FieldsSeq(string(b)) {
		c, _ := strconv.Atoi(f)
		seen = append(seen, c)
	}
	if len(seen) != n || slices.Max(seen) != 2 {
		t.Errorf("running tasks seen by each step: %v, want %d counts, all at most 2 and some 2", seen, n)
	}
}

// Workers of a kind share one consumer: a second worker adds capacity. Two tasks that can
// only pass together (each waits for the other's marker) pass on two workers of
// concurrency 1.
func TestAddingAWorkerAddsCapacity(t *testing.T) {
	h := newHarness(t)
	dir := testdir.Shared(t)
	pair := func(self, other string) string {
		return fmt.Sprintf(`touch %[1]s/%[2]s; i=0; while [ ! -e %[1]s/%[3]s ]; do i=$((i+1)); [ $i -gt 200 ] && exit 1; sleep 0.05; done`, dir, self, other)
	}
	h.publish(t, newTask("cap-a", pair("a", "b")))
	h.publish(t, newTask("cap-b", pair("b", "a")))
	h.start(t, Config{Concurrency: 1, ID: "w1"})
	h.start(t, Config{Concurrency: 1, ID: "w2"})
	for _, run := range []string{"cap-a", "cap-b"} {
		if res := h.final(t, run); res.Outcome != sluicev1.Outcome_OUTCOME_PASSED {
			t.Fatalf("%s: %s %q: the two workers did not run at once", run, res.Outcome, res.Message)
		}
	}
}

// A cancel signal kills the step's process group within 5 s; the result is CANCELLED and
// the task is acked, not redelivered.
func TestCancelSignal(t *testing.T) {
	tests := []struct {
		name   string
		signal *sluicev1.CancelSignal
	}{
		{"whole run", &sluicev1.CancelSignal{RunId: "cx", Reason: "user asked"}},
		{"one stage and attempt", &sluicev1.CancelSignal{RunId: "cx", Stage: "build", Attempt: 1, Reason: "user asked"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			pidFile := filepath.Join(testdir.Shared(t), "pgid")
			h.publish(t, newTask("cx", pgidTo(pidFile)+"; sleep 100 & sleep 100"))
			h.start(t, Config{})
			pgid := proctest.ReadPID(t, pidFile, waitLimit)

			data, err := proto.Marshal(tc.signal)
			if err != nil {
				t.Fatal(err)
			}
			sent := time.Now()
			if err := h.env.NC.Publish(h.names.Cancel("cx"), data); err != nil {
				t.Fatal(err)
			}
			res := h.final(t, "cx")
			if took := time.Since(sent); took > 5*time.Second {
				t.Errorf("final result %s after the cancel signal, want within 5s", took)
			}
			proctest.WaitGone(t, pgid, 5*time.Second)
			if res.Outcome != sluicev1.Outcome_OUTCOME_CANCELLED || !strings.Contains(res.Message, "user asked") {
				t.Errorf("got %s %q, want CANCELLED with the reason", res.Outcome, res.Message)
			}
			h.waitQueueEmpty(t)
			if info := h.consumerInfo(t); info.NumRedelivered != 0 {
				t.Errorf("cancelled task redelivered %d times", info.NumRedelivered)
			}
		})
	}
}

func TestCancelMatches(t *testing.T) {
	task := &sluicev1.Task{RunId: "r", Stage: "test", Attempt: 2}
	tests := []struct {
		sig  *sluicev1.CancelSignal
		want bool
	}{
		{&sluicev1.CancelSignal{RunId: "r"}, true},
		{&sluicev1.CancelSignal{RunId: "other"}, false},
		{&sluicev1.CancelSignal{RunId: "r", Stage: "test"}, true},
		{&sluicev1.CancelSignal{RunId: "r", Stage: "test", Attempt: 2}, true},
		{&sluicev1.CancelSignal{RunId: "r", Stage: "test", Attempt: 1}, false},
		{&sluicev1.CancelSignal{RunId: "r", Stage: "lint"}, false},
	}
	for _, tc := range tests {
		if got := cancelMatches(tc.sig, task); got != tc.want {
			t.Errorf("cancelMatches(%v) = %v, want %v", tc.sig, got, tc.want)
		}
	}
}

// On stop, a task that finishes within the grace period reports normally; one that does
// not is killed and handed back, and a second worker completes it (delivery 2).
func TestGracefulStop(t *testing.T) {
	t.Run("finishes within grace", func(t *testing.T) {
		h := newHarness(t)
		marker := filepath.Join(testdir.Shared(t), "started")
		h.publish(t, newTask("g1", "touch "+marker+"; sleep 0.5"))
		w := h.start(t, Config{ID: "a", Grace: 10 * time.Second})
		waitFor(t, "the step to start", func() bool { _, err := os.Stat(marker); return err == nil })
		w.stop(t)
		res := h.final(t, "g1")
		if res.Outcome != sluicev1.Outcome_OUTCOME_PASSED || res.Worker != "a" {
			t.Errorf("got %s from %s, want PASSED from a", res.Outcome, res.Worker)
		}
		h.waitQueueEmpty(t)
	})
	t.Run("handed back after grace", func(t *testing.T) {
		h := newHarness(t)
		pidFile := filepath.Join(testdir.Shared(t), "pgid")
		// The first delivery hangs; the second finds the pid file and finishes.
		h.publish(t, newTask("g2", "if [ -e "+pidFile+" ]; then echo second; else "+pgidTo(pidFile)+"; sleep 100 & sleep 100; fi"))
		a := h.start(t, Config{ID: "a", Grace: 300 * time.Millisecond})
		pgid := proctest.ReadPID(t, pidFile, waitLimit)
		a.stop(t)
		proctest.WaitGone(t, pgid, 5*time.Second)
		a.logs.waitLine(t, "handing the task back")

		h.start(t, Config{ID: "b"})
		got := h.results(t, "g2", hasFinal)
		if len(got) != 2 || got[0].Worker != "a" || got[0].Delivery != 1 {
			t.Fatalf("results %v, want a's STARTED then one FINAL", got)
		}
		final := got[1]
		if final.Outcome != sluicev1.Outcome_OUTCOME_PASSED || final.Worker != "b" || final.Delivery != 2 {
			t.Errorf("final %s from %s delivery %d, want PASSED from b delivery 2", final.Outcome, final.Worker, final.Delivery)
		}
		h.waitQueueEmpty(t)
	})
}

// Output reaches the logs stream in order and in chunks of at most 32 KiB, with every
// secret value redacted, also one printed in two writes.
func TestLogsStreamedAndRedacted(t *testing.T) {
	const secret = "tok-12345-very-secret"
	t.Setenv("TEST_TOKEN_VALUE", secret)
	h := newHarness(t)
	task := newTask("logs",
		`echo "token=$TEST_TOKEN"; printf 'tok-12345'; sleep 0.3; printf -- '-very-secret\n'; echo oops >&2`,
		`head -c 100000 /dev/zero | tr '\0' x; echo`)
	task.Spec.Secrets = []string{"TEST_TOKEN"}
	h.publish(t, task)
	h.start(t, Config{Secrets: &Secrets{Grants: []SecretGrant{{Name: "TEST_TOKEN", FromEnv: "TEST_TOKEN_VALUE"}}}})
	if res := h.final(t, "logs"); res.Outcome != sluicev1.Outcome_OUTCOME_PASSED {
		t.Fatalf("%s %q", res.Outcome, res.Message)
	}

	// Logs are acked before the final result, so all are stored now.
	streams := map[string]*bytes.Buffer{}
	for _, c := range h.logChunks(t, "logs", "build") {
		if c.RunId != "logs" || c.Stage != "build" || c.Attempt != 1 || c.Time == nil {
			t.Errorf("chunk identity %v", c)
		}
		if len(c.Data) > logFlushBytes {
			t.Errorf("chunk of %d bytes, want at most %d", len(c.Data), logFlushBytes)
		}
		// The command line in the sluice stream names only half of the secret, which stays.
		if bytes.Contains(c.Data, []byte(secret)) || c.Stream == StreamStdout && bytes.Contains(c.Data, []byte("tok-12345")) {
			t.Errorf("%s chunk leaks the secret: %q", c.Stream, c.Data)
		}
		if streams[c.Stream] == nil {
			streams[c.Stream] = &bytes.Buffer{}
		}
		streams[c.Stream].Write(c.Data)
	}
	want := "token=***\n***\n" + strings.Repeat("x", 100000) + "\n"
	if got := streams[StreamStdout].String(); got != want {
		t.Errorf("stdout: %d bytes starting %.40q, want %d bytes starting %.40q", len(got), got, len(want), want)
	}
	if got := streams[StreamStderr].String(); got != "oops\n" {
		t.Errorf("stderr %q", got)
	}
	sl := streams[StreamSluice].String()
	for _, s := range []string{"took the task (delivery 1)", "step 1: echo", "step 2: head", "passed: 2 steps passed"} {
		if !strings.Contains(sl, s) {
			t.Errorf("sluice log %q lacks %q", sl, s)
		}
	}
}

// A task with a source digest runs in the extracted bundle.
func TestSourceCheckout(t *testing.T) {
	h := newHarness(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "hello.txt"), []byte("hi from the bundle\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	store, err := h.env.JS.ObjectStore(t.Context(), h.names.SourcesStore())
	if err != nil {
		t.Fatal(err)
	}
	digest, err := source.Upload(t.Context(), store, dir, source.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	for _, run := range []string{"src1", "src2"} { // the second comes from the cache
		task := newTask(run, "cat hello.txt")
		task.SourceDigest = digest
		h.publish(t, task)
	}
	h.start(t, Config{})
	for _, run := range []string{"src1", "src2"} {
		if res := h.final(t, run); res.Outcome != sluicev1.Outcome_OUTCOME_PASSED {
			t.Fatalf("%s: %s %q", run, res.Outcome, res.Message)
		}
		var out, sl strings.Builder
		for _, c := range h.logChunks(t, run, "build") {
			switch c.Stream {
			case StreamStdout:
				out.Write(c.Data)
			case StreamSluice:
				sl.Write(c.Data)
			}
		}
		if out.String() != "hi from the bundle\n" || !strings.Contains(sl.String(), "checked out source "+digest) {
			t.Errorf("%s: stdout %q, sluice log %q", run, out.String(), sl.String())
		}
	}
}

// A registered handler replaces the generic one: it gets the task's services (steps,
// artifacts); a panicking handler fails its task, not the worker.
func TestRegistryHandler(t *testing.T) {
	h := newHarness(t)
	reg := DefaultRegistry()
	reg.Register(static, HandlerFunc(func(ctx context.Context, t *Task) *sluicev1.Result {
		if t.Task.GetStage() == "panic" {
			panic("engine bug")
		}
		res := t.RunSteps(ctx, t.Task.GetSpec().GetRun())
		ref, err := t.UploadArtifact(ctx, "reports/out.txt", "text/plain", strings.NewReader("report body"))
		if err != nil {
			return errorResult("%v", err)
		}
		res.Artifacts = append(res.Artifacts, ref)
		return res
	}))
	bad := newTask("reg-panic", "true")
	bad.Stage = "panic"
	h.publish(t, bad)
	h.publish(t, newTask("reg", "true"))
	h.start(t, Config{Registry: reg})

	if res := h.final(t, "reg-panic"); res.Outcome != sluicev1.Outcome_OUTCOME_ERROR || !strings.Contains(res.Message, "panicked: engine bug") {
		t.Errorf("panicking handler: %s %q", res.Outcome, res.Message)
	}
	res := h.final(t, "reg")
	if res.Outcome != sluicev1.Outcome_OUTCOME_PASSED || len(res.Artifacts) != 1 {
		t.Fatalf("%s %q artifacts %v", res.Outcome, res.Message, res.Artifacts)
	}
	ref := res.Artifacts[0]
	// Each delivery stores under its own prefix (attempt 1, shard 0, delivery 1).
	if ref.Object != "reg/build/1.0.1/reports/out.txt" || ref.Name != "reports/out.txt" || ref.Size != int64(len("report body")) ||
		ref.ContentType != "text/plain" || !strings.HasPrefix(ref.Digest, "sha256:") || len(ref.Digest) != 71 {
		t.Errorf("artifact ref %v", ref)
	}
	store, err := h.env.JS.ObjectStore(t.Context(), h.names.ArtifactsStore())
	if err != nil {
		t.Fatal(err)
	}
	obj, err := store.GetBytes(t.Context(), ref.Object)
	if err != nil || string(obj) != "report body" {
		t.Errorf("stored artifact %q, %v", obj, err)
	}
}

func TestUploadArtifactRejectsEscapes(t *testing.T) {
	task := &Task{Task: newTask("r")}
	for _, name := range []string{"", "/etc/passwd", "..", "../x", "a/../../x"} {
		if _, err := task.UploadArtifact(context.Background(), name, "", io.MultiReader()); !errors.Is(err, ErrBadArtifactName) {
			t.Errorf("UploadArtifact(%q) = %v, want ErrBadArtifactName", name, err)
		}
	}
}

// The final result is never lost: while the results stream is gone the task is not acked,
// and once it is back the task is retried and recorded.
func TestFinalResultPublishFailureRetries(t *testing.T) {
	h := newHarness(t)
	gate := filepath.Join(t.TempDir(), "go")
	h.publish(t, newTask("pf", "i=0; while [ ! -e "+gate+" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done"))
	w := h.start(t, Config{})
	h.results(t, "pf", func(g []gotResult) bool { return len(g) == 1 })

	if err := h.env.JS.DeleteStream(t.Context(), h.names.ResultsStream()); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	w.logs.waitLine(t, "cannot record the final result")
	if info := h.consumerInfo(t); info.NumAckPending != 1 {
		t.Errorf("task ack pending %d after the failed publish, want 1 (not acked)", info.NumAckPending)
	}
	if err := bus.Provision(t.Context(), h.env.JS, h.env.Config); err != nil {
		t.Fatal(err)
	}
	res := h.final(t, "pf")
	if res.Outcome != sluicev1.Outcome_OUTCOME_PASSED || res.Delivery < 2 {
		t.Errorf("got %s delivery %d, want PASSED on a redelivery", res.Outcome, res.Delivery)
	}
	h.waitQueueEmpty(t)
}

func TestNewValidates(t *testing.T) {
	h := newHarness(t)
	tests := []struct {
		name string
		c    Config
	}{
		{"negative concurrency", Config{Concurrency: -1}},
		{"negative grace", Config{Grace: -time.Second}},
		{"unknown kind", Config{Kinds: []sluicev1.StageKind{99}}},
		{"kind without handler", Config{Registry: NewRegistry()}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := New(h.env.NC, tc.c); !errors.Is(err, ErrBadConfig) {
				t.Errorf("New = %v, want ErrBadConfig", err)
			}
		})
	}
}

// A worker given relative directories (`sluice dev --data devdata`) gives its steps a HOME
// and TMPDIR that exist from where the steps run (their source tree, not the worker's cwd).
func TestRelativeWorkDirs(t *testing.T) {
	h := newHarness(t)
	t.Chdir(testdir.Reachable(t))
	h.publish(t, newTask("rel", `test -d "$HOME" && touch "$TMPDIR/probe"`))
	h.start(t, Config{WorkDir: "devdata/work", CacheDir: "devdata/cache"})
	if res := h.final(t, "rel"); res.Outcome != sluicev1.Outcome_OUTCOME_PASSED {
		t.Fatalf("%s: %s", res.Outcome, res.Message)
	}
}

// A work or cache directory that cannot be made stops the worker as it starts, with an
// error naming the directory and the flag that moves it.
func TestADirectoryInTheWayStopsTheWorkerSayingWhich(t *testing.T) {
	h := newHarness(t)
	blocker := filepath.Join(t.TempDir(), "a-file")
	if err := os.WriteFile(blocker, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		cfg  Config
		want []string
	}{
		{Config{WorkDir: filepath.Join(blocker, "work")}, []string{"work directory " + filepath.Join(blocker, "work"), "not a directory", "--work-dir"}},
		{Config{CacheDir: filepath.Join(blocker, "cache")}, []string{"cache directory " + filepath.Join(blocker, "cache"), "not a directory", "--cache-dir"}},
	} {
		nc, _ := bustest.Connect(t, h.env.Server.ClientURL())
		cfg := c.cfg
		cfg.Bus, cfg.Kinds, cfg.ID, cfg.Logger = h.env.Config, []sluicev1.StageKind{static}, "w-blocked", slog.New(slog.DiscardHandler)
		if cfg.WorkDir == "" {
			cfg.WorkDir = testdir.Reachable(t)
		}
		if cfg.CacheDir == "" {
			cfg.CacheDir = t.TempDir()
		}
		cfg.UnsafeSharedUser = os.Geteuid() != 0
		w, err := New(nc, cfg)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		err = w.Run(ctx)
		timedOut := ctx.Err() != nil
		cancel()
		if err == nil || timedOut {
			t.Fatalf("Run with %s in the way: %v, want it to stop at once", blocker, err)
		}
		for _, want := range c.want {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("Run: %q does not say %q", err, want)
			}
		}
	}
}

// anyExit: the exit code of a step killed by a timeout depends on who the signal reached
// first (the shell, or the command it started in a sandbox where the shell is init).
const anyExit = -1000

// pgidTo is a step command writing its process group id, as the worker's machine sees it
// (in a sandbox $$ is 1), to file.
func pgidTo(file string) string { return "cut -d' ' -f5 /proc/self/stat > " + file }

// A worker holds no more tasks than it has idle slots: while both slots of a worker run, the
// other queued tasks stay on the server for any worker to take, not in this one's buffer.
func TestBusyWorkerHoldsNoQueuedTasks(t *testing.T) {
	h := newHarness(t)
	const n = 5
	for i := range n {
		h.publish(t, newTask("busy"+strconv.Itoa(i), "sleep 1"))
	}
	h.start(t, Config{Concurrency: 2})
	waitFor(t, "the worker's consumer", func() bool {
		_, err := h.env.JS.Consumer(t.Context(), h.names.TasksStream(), h.names.WorkerConsumer(static.Slug(), DefaultPool))
		return err == nil
	})
	most := 0
	for deadline := time.Now().Add(1500 * time.Millisecond); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		most = max(most, h.consumerInfo(t).NumAckPending)
	}
	if most != 2 {
		t.Fatalf("at most %d tasks held at once by a worker of 2 slots, want 2", most)
	}
	for i := range n {
		if res := h.final(t, "busy"+strconv.Itoa(i)); res.Outcome != sluicev1.Outcome_OUTCOME_PASSED {
			t.Errorf("task %d: %s %q", i, res.Outcome, res.Message)
		}
	}
}

// A task's tree goes when the task ends, whatever its steps left in it: nothing, files in
// HOME and TMPDIR, a read-only tree (as the Go module cache is), a file beside src, or a
// failed step's leftovers. The pipelines' step caches (.caches) stay.
func TestTaskTreesAreRemoved(t *testing.T) {
	h := newHarness(t)
	work := testdir.Reachable(t)
	tasks := map[string][]string{
		"untouched":    {"true"},
		"home and tmp": {`echo x > "$HOME/f"`, `echo x > "$TMPDIR/f"`, "echo x > f"},
		"read-only":    {`mkdir -p "$HOME/mod/a/b" && echo x > "$HOME/mod/a/b/f" && chmod -R a-w "$HOME/mod"`},
		"beside src":   {"echo x > ../beside"},
		"failed":       {`mkdir -p "$HOME/d" && echo x > "$HOME/d/f"`, "exit 3"},
	}
	var runs []string
	for name, steps := range tasks {
		run := strings.ReplaceAll(name, " ", "-")
		runs = append(runs, run)
		h.publish(t, newTask(run, steps...))
	}
	h.start(t, Config{WorkDir: work, Concurrency: 2})
	for _, run := range runs {
		h.final(t, run)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		entries, err := os.ReadDir(work)
		if err != nil {
			t.Fatal(err)
		}
		left := slices.DeleteFunc(entries, func(e os.DirEntry) bool { return e.Name() == ".caches" })
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			var names []string
			for _, e := range left {
				names = append(names, e.Name())
			}
			t.Fatalf("task trees left in the work directory: %v", names)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
