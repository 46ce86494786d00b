package decide

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/sluice-ci/sluice/coordinator/internal/fixture"
	sluicev1 "github.com/sluice-ci/sluice/proto/sluice/v1"
)

var t0 = time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)

// stage builds a run: stage spec; opts tweak it.
// The specs the planner tests share.
var stage, sevenStage = fixture.Stage, fixture.SevenStage

// harness drives one run through Process on a decide.Harness, as the coordinator's planner
// would, and keeps the run's state at hand; tests tweak p and now between inputs.
type harness struct {
	t   testing.TB
	p   Policy
	st  *sluicev1.RunState
	now time.Time
	h   *Harness
}

func newHarness(t testing.TB, ref string, stages ...*sluicev1.StageSpec) *harness {
	t.Helper()
	spec := &sluicev1.PipelineSpec{Version: 1, Name: "web", Stages: stages}
	h := &harness{t: t, p: DefaultPolicy(), now: t0, h: NewHarness(DefaultPolicy(), t0)}
	h.st = NewRun("r1", spec, &sluicev1.SubmitRunRequest{Ref: ref}, "", t0)
	return h
}

// do applies in and returns the decision; the state advances when it changed. An input
// the run rejects fails the test (use try).
func (h *harness) do(in Input) Decision {
	h.t.Helper()
	d, err := h.try(in)
	if err != nil {
		h.t.Fatalf("%T: %v", in, err)
	}
	return d
}

// try applies in and returns the decision and the input's rejection.
func (h *harness) try(in Input) (Decision, error) {
	h.t.Helper()
	h.h.Policy, h.h.Now = h.p, h.now
	var d Decision
	var err error
	if h.h.State(h.st.GetId()) == nil {
		_, isStart := in.(Start)
		if !isStart {
			h.t.Fatalf("the first input of a run is Start, not %T", in)
		}
		d, err = h.h.Create(h.st)
	} else {
		d, err = h.h.Do(h.st.GetId(), in)
	}
	if st := h.h.State(h.st.GetId()); st != nil {
		h.st = st
	}
	return d, err
}

func (h *harness) status(name string) sluicev1.StageStatus {
	for _, s := range h.st.GetStages() {
		if s.GetName() == name {
			return s.GetStatus()
		}
	}
	h.t.Fatalf("no stage %s", name)
	return 0
}

func result(stage string, attempt int32, phase sluicev1.ResultPhase, outcome sluicev1.Outcome) ResultIn {
	return ResultIn{Result: &sluicev1.Result{RunId: "r1", Stage: stage, Attempt: attempt, Phase: phase, Outcome: outcome, Worker: "w1", Delivery: 1}}
}

func started(stage string, attempt int32) ResultIn {
	return result(stage, attempt, sluicev1.ResultPhase_RESULT_PHASE_STARTED, 0)
}

func passed(stage string, attempt int32) ResultIn {
	return result(stage, attempt, sluicev1.ResultPhase_RESULT_PHASE_FINAL, sluicev1.Outcome_OUTCOME_PASSED)
}

func failed(stage string, attempt int32) ResultIn {
	r := result(stage, attempt, sluicev1.ResultPhase_RESULT_PHASE_FINAL, sluicev1.Outcome_OUTCOME_FAILED)
	r.Result.Message = "step 1 `false` exited 1"
	return r
}

func taskStages(d Decision) []string {
	var out []string
	for _, t := range d.Tasks {
		out = append(out, t.GetStage())
	}
	slices.Sort(out)
	return out
}

func eventTypes(d Decision) []string {
	var out []string
	for _, e := range d.State.GetOutbox() {
		out = append(out, e.GetType()+":"+e.GetStage())
	}
	return out
}

func TestDecideWalksTheSevenStageDAG(t *testing.T) {
	h := newHarness(t, "main", sevenStage()...)
	d := h.do(Start{})
	if got := taskStages(d); !slices.Equal(got, []string{"lint", "typecheck"}) {
		t.Fatalf("start dispatched %v, want the two roots in parallel", got)
	}
	if got := eventTypes(d); !slices.Equal(got, []string{"run.submitted:", "stage.queued:lint", "stage.queued:typecheck"}) {
		t.Fatalf("start events %v", got)
	}
	steps := []struct {
		in        Input
		wantTasks []string
	}{
		{started("lint", 1), nil},
		{started("typecheck", 1), nil},
		{passed("lint", 1), nil},
		{passed("typecheck", 1), []string{"governance", "test"}},
		{passed("test", 1), nil},
		{passed("governance", 1), []string{"backup", "e2e"}},
		{passed("backup", 1), nil},
		{passed("e2e", 1), []string{"deploy-gate"}},
		{passed("deploy-gate", 1), nil},
	}
	for _, s := range steps {
		d := h.do(s.in)
		if d.State == nil {
			t.Fatalf("%+v changed nothing", s.in)
		}
		if got := taskStages(d); !slices.Equal(got, s.wantTasks) {
			t.Fatalf("after %v: dispatched %v, want %v", s.in.(ResultIn).Result.GetStage(), got, s.wantTasks)
		}
	}
	if h.st.GetStatus() != sluicev1.RunStatus_RUN_STATUS_PASSED {
		t.Fatalf("run %v, want passed", h.st.GetStatus())
	}
	if h.st.GetEventSeq() != 1+7*3+1 {
		t.Fatalf("event seq %d: want submitted + queued/started-or-not/passed per stage + run.passed", h.st.GetEventSeq())
	}
}

// A worker reports a quick task's start only with its end, and a longer one's a while
// after it began: either way the stage started when the worker says, within the time it
// was queued, and stage.started comes before the stage's end. A start before the stage
// was queued, or after the decision, is the decision's time.
func TestDecideStageStartIsTheWorkersStart(t *testing.T) {
	tests := []struct {
		name      string
		in        ResultIn
		reported  time.Duration // the result's start, after the stage was queued
		wantStart time.Duration // the stage's start, after it was queued
		wantTypes []string
	}{
		{"final without started", passed("a", 1), 2 * time.Second, 2 * time.Second,
			[]string{"stage.started:a", "stage.passed:a", "run.passed:"}},
		{"late started", started("a", 1), 2 * time.Second, 2 * time.Second,
			[]string{"stage.started:a"}},
		{"start before the queue", started("a", 1), -time.Hour, 3 * time.Second,
			[]string{"stage.started:a"}},
		{"start after the decision", started("a", 1), time.Hour, 3 * time.Second,
			[]string{"stage.started:a"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, "main", stage("a"))
			h.do(Start{})
			queued := h.now
			h.now = queued.Add(3 * time.Second)
			in := tt.in
			in.Result.StartedAt = timestamppb.New(queued.Add(tt.reported))
			d := h.do(in)
			if got := eventTypes(d); !slices.Equal(got, tt.wantTypes) {
				t.Errorf("events %v, want %v", got, tt.wantTypes)
			}
			s := h.st.GetStages()[0]
			if got := s.GetStartedAt().AsTime().Sub(queued); got != tt.wantStart {
				t.Errorf("stage started %s after it was queued, want %s", got, tt.wantStart)
			}
		})
	}
}

// A repeat or a result of the past is dropped. A result from a later state than the one
// decided on (read from a replica that lags) is neither applied nor dropped: ErrNotYet has
// the coordinator decide it again.
func TestDecideIgnoresStaleResultsAndDefersEarlyOnes(t *testing.T) {
	tests := []struct {
		name    string
		prep    []Input
		in      Input
		wantErr error
	}{
		{"duplicate final", []Input{passed("a", 1)}, passed("a", 1), nil},
		{"stale attempt", []Input{failed("a", 1), Tick{}}, passed("a", 1), nil},
		{"started after final", []Input{passed("a", 1)}, started("a", 1), nil},
		{"unknown stage", nil, passed("zzz", 1), nil},
		{"duplicate started", []Input{started("a", 1)}, started("a", 1), nil},
		{"shard out of range", nil, ResultIn{Result: &sluicev1.Result{Stage: "a", Attempt: 1, ShardIndex: 3, Phase: sluicev1.ResultPhase_RESULT_PHASE_FINAL}}, nil},
		{"later attempt", []Input{failed("a", 1), Tick{}}, passed("a", 7), ErrNotYet},
		{"stage not queued yet", nil, passed("b", 1), ErrNotYet},
		{"started before queued", nil, started("b", 1), ErrNotYet},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := stage("a")
			a.Retries = 1
			h := newHarness(t, "main", a, stage("b", "a"))
			h.do(Start{})
			for _, in := range tt.prep {
				h.now = h.now.Add(time.Minute)
				h.do(in)
			}
			d, err := h.try(tt.in)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Fatalf("got %v, want %v", err, tt.wantErr)
			}
			if d.State != nil || len(d.Tasks) > 0 {
				t.Fatalf("input was applied: tasks %v", taskStages(d))
			}
		})
	}
}

func TestDecideRetriesWithBackoffThenFails(t *testing.T) {
	a := stage("a")
	a.Retries = 2
	a.RetryBackoff = durationpb.New(2 * time.Second)
	h := newHarness(t, "main", a, stage("b", "a"))
	h.do(Start{})

	d := h.do(failed("a", 1))
	if h.status("a") != sluicev1.StageStatus_STAGE_STATUS_RETRY_WAIT || len(d.Tasks) != 0 {
		t.Fatalf("after first failure: %v, tasks %v", h.status("a"), taskStages(d))
	}
	if got := NextWake(h.st); !got.Equal(t0.Add(2 * time.Second)) {
		t.Fatalf("next wake %v, want first backoff 2s", got)
	}
	h.now = t0.Add(1 * time.Second)
	if d := h.do(Tick{}); d.State != nil {
		t.Fatal("retried before the backoff elapsed")
	}
	h.now = t0.Add(2 * time.Second)
	d = h.do(Tick{})
	if len(d.Tasks) != 1 || d.Tasks[0].GetAttempt() != 2 {
		t.Fatalf("retry dispatched %v", d.Tasks)
	}
	d = h.do(failed("a", 2))
	if got := NextWake(h.st); !got.Equal(h.now.Add(4 * time.Second)) {
		t.Fatalf("second backoff: wake %v, want doubled to 4s", got.Sub(h.now))
	}
	h.now = h.now.Add(4 * time.Second)
	h.do(Tick{})
	d = h.do(failed("a", 3))
	if h.status("a") != sluicev1.StageStatus_STAGE_STATUS_FAILED {
		t.Fatalf("after retries exhausted: %v", h.status("a"))
	}
	if h.status("b") != sluicev1.StageStatus_STAGE_STATUS_SKIPPED {
		t.Fatalf("dependent of a failed stage: %v, want skipped", h.status("b"))
	}
	if h.st.GetStatus() != sluicev1.RunStatus_RUN_STATUS_FAILED {
		t.Fatalf("run %v, want failed", h.st.GetStatus())
	}
	if !slices.Contains(eventTypes(d), "run.failed:") {
		t.Fatalf("events %v lack run.failed", eventTypes(d))
	}
}

func TestDecideIndependentBranchKeepsRunningAfterAFailure(t *testing.T) {
	h := newHarness(t, "main", stage("a"), stage("b"), stage("c", "a"))
	h.do(Start{})
	h.do(failed("a", 1))
	if h.st.GetStatus() != sluicev1.RunStatus_RUN_STATUS_RUNNING {
		t.Fatalf("run %v while b still runs", h.st.GetStatus())
	}
	h.do(passed("b", 1))
	if h.st.GetStatus() != sluicev1.RunStatus_RUN_STATUS_FAILED {
		t.Fatalf("run %v, want failed", h.st.GetStatus())
	}
}

func TestDecideWhenBranchSkips(t *testing.T) {
	gate := stage("gate", "a")
	gate.When = &sluicev1.When{Branch: []string{"main", "release/*"}}
	for ref, want := range map[string]sluicev1.StageStatus{
		"feature-x":            sluicev1.StageStatus_STAGE_STATUS_SKIPPED,
		"main":                 sluicev1.StageStatus_STAGE_STATUS_QUEUED,
		"refs/heads/main":      sluicev1.StageStatus_STAGE_STATUS_QUEUED,
		"release/1.2":          sluicev1.StageStatus_STAGE_STATUS_QUEUED,
		"":                     sluicev1.StageStatus_STAGE_STATUS_SKIPPED,
		"refs/heads/feature-y": sluicev1.StageStatus_STAGE_STATUS_SKIPPED,
	} {
		h := newHarness(t, ref, stage("a"), gate)
		h.do(Start{})
		h.do(passed("a", 1))
		if got := h.status("gate"); got != want {
			t.Errorf("ref %q: gate %v, want %v", ref, got, want)
		}
		if want == sluicev1.StageStatus_STAGE_STATUS_SKIPPED && h.st.GetStatus() != sluicev1.RunStatus_RUN_STATUS_PASSED {
			t.Errorf("ref %q: run %v; a skipped gate does not fail the run", ref, h.st.GetStatus())
		}
	}
}

func TestDecideCancel(t *testing.T) {
	h := newHarness(t, "main", stage("a"), stage("b", "a"))
	h.do(Start{})
	h.do(started("a", 1))
	d := h.do(CancelIn{Reason: "by alice"})
	if !d.PurgeQueued || len(d.Cancels) != 1 || d.Cancels[0].GetStage() != "" {
		t.Fatalf("cancel effects: purge %v, signals %v", d.PurgeQueued, d.Cancels)
	}
	if h.st.GetStatus() != sluicev1.RunStatus_RUN_STATUS_CANCELLED || h.status("a") != sluicev1.StageStatus_STAGE_STATUS_CANCELLED || h.status("b") != sluicev1.StageStatus_STAGE_STATUS_CANCELLED {
		t.Fatalf("after cancel: run %v a %v b %v", h.st.GetStatus(), h.status("a"), h.status("b"))
	}
	// The stopped task's result is recorded for its shard, and changes nothing else.
	events := h.st.GetEventSeq()
	if d := h.do(result("a", 1, sluicev1.ResultPhase_RESULT_PHASE_FINAL, sluicev1.Outcome_OUTCOME_CANCELLED)); len(d.Tasks) > 0 || len(d.Cancels) > 0 {
		t.Fatalf("a result after cancel: tasks %v, cancels %v", d.Tasks, d.Cancels)
	}
	if h.st.GetEventSeq() != events || h.st.GetStatus() != sluicev1.RunStatus_RUN_STATUS_CANCELLED || h.status("a") != sluicev1.StageStatus_STAGE_STATUS_CANCELLED {
		t.Fatalf("a result after cancel moved the run: %d events (had %d), run %v, a %v", h.st.GetEventSeq(), events, h.st.GetStatus(), h.status("a"))
	}
	if sh := h.st.GetStages()[0].GetShards()[0]; sh.GetOutcome() != sluicev1.Outcome_OUTCOME_CANCELLED {
		t.Fatalf("the stopped shard's outcome is not recorded: %v", sh)
	}
	if d, err := h.try(CancelIn{}); err != nil || d.State != nil {
		t.Fatalf("second cancel: %v", err)
	}

	done := newHarness(t, "main", stage("a"))
	done.do(Start{})
	done.do(passed("a", 1))
	if _, err := done.try(CancelIn{}); !errors.Is(err, ErrConflict) {
		t.Fatalf("cancel of a passed run: %v, want ErrConflict", err)
	}
}

func TestDecideApproval(t *testing.T) {
	gate := stage("gate", "a")
	gate.Approval = "required"
	h := newHarness(t, "main", stage("a"), gate)
	h.do(Start{})
	if _, err := h.try(ApproveIn{Stage: "a", By: "bob"}); !errors.Is(err, ErrConflict) {
		t.Fatalf("approving a stage without approval: %v", err)
	}
	if _, err := h.try(ApproveIn{Stage: "nope"}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("approving an unknown stage: %v", err)
	}
	h.do(passed("a", 1))
	if h.status("gate") != sluicev1.StageStatus_STAGE_STATUS_WAITING_APPROVAL {
		t.Fatalf("gate %v, want waiting", h.status("gate"))
	}
	d := h.do(ApproveIn{Stage: "gate", By: "carol"})
	if got := taskStages(d); !slices.Equal(got, []string{"gate"}) {
		t.Fatalf("approve dispatched %v", got)
	}
	if _, err := h.try(ApproveIn{Stage: "gate", By: "carol"}); !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "carol") {
		t.Fatalf("second approval: %v, want a conflict naming the first approver", err)
	}
	if got := h.st.GetStages()[1].GetApprovedBy(); got != "carol" {
		t.Fatalf("approved by %q", got)
	}
}

// An approval is for a stage that waits: approving one whose needs have not passed yet is a
// conflict, so nobody can sign off on work that has not been checked.
func TestDecideApprovingAStageThatDoesNotWaitIsAConflict(t *testing.T) {
	gate := stage("gate", "a")
	gate.Approval = "required"
	h := newHarness(t, "main", stage("a"), gate)
	h.do(Start{})
	if _, err := h.try(ApproveIn{Stage: "gate", By: "dave"}); !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "pending") {
		t.Fatalf("approving a pending stage: %v, want a conflict", err)
	}
	if d := h.do(passed("a", 1)); len(taskStages(d)) != 0 || h.status("gate") != sluicev1.StageStatus_STAGE_STATUS_WAITING_APPROVAL {
		t.Fatalf("gate %v after its needs passed, tasks %v: it must wait for an approval", h.status("gate"), taskStages(d))
	}
}

func TestDecideDeadlineFailsTheAttemptAndSignalsCancel(t *testing.T) {
	a := stage("a")
	a.Timeout = durationpb.New(time.Minute)
	h := newHarness(t, "main", a)
	h.do(Start{})
	h.do(started("a", 1))
	wake := NextWake(h.st)
	if want := t0.Add(time.Minute + h.p.DeadlineGrace); !wake.Equal(want) {
		t.Fatalf("deadline %v, want %v", wake, want)
	}
	h.now = wake
	d := h.do(Tick{})
	if h.status("a") != sluicev1.StageStatus_STAGE_STATUS_FAILED || len(d.Cancels) != 1 || d.Cancels[0].GetStage() != "a" {
		t.Fatalf("after deadline: %v, cancels %v", h.status("a"), d.Cancels)
	}
	if !strings.Contains(h.st.GetStages()[0].GetMessage(), "timeout of 1m0s") {
		t.Fatalf("message %q does not name the timeout", h.st.GetStages()[0].GetMessage())
	}
}

func TestDecideMaxDeliveredFailsTheStage(t *testing.T) {
	h := newHarness(t, "main", stage("a"))
	h.do(Start{})
	if d := h.do(MaxDelivered{Stage: "a", Attempt: 9, Deliveries: 5}); d.State != nil {
		t.Fatal("advisory for another attempt applied")
	}
	h.do(MaxDelivered{Stage: "a", Attempt: 1, Deliveries: 5})
	if h.status("a") != sluicev1.StageStatus_STAGE_STATUS_FAILED || !strings.Contains(h.st.GetStages()[0].GetMessage(), "delivered 5 times") {
		t.Fatalf("stage %v: %q", h.status("a"), h.st.GetStages()[0].GetMessage())
	}
}

func TestDecideShards(t *testing.T) {
	a := stage("a")
	a.Shards = 3
	h := newHarness(t, "main", a)
	d := h.do(Start{})
	if len(d.Tasks) != 3 || d.Tasks[2].GetShardIndex() != 2 || d.Tasks[2].GetShardCount() != 3 {
		t.Fatalf("shard tasks %v", d.Tasks)
	}
	shard := func(i int32, o sluicev1.Outcome) ResultIn {
		r := result("a", 1, sluicev1.ResultPhase_RESULT_PHASE_FINAL, o)
		r.Result.ShardIndex = i
		return r
	}
	h.do(shard(0, sluicev1.Outcome_OUTCOME_PASSED))
	h.do(shard(2, sluicev1.Outcome_OUTCOME_PASSED))
	if h.status("a") == sluicev1.StageStatus_STAGE_STATUS_PASSED {
		t.Fatal("stage passed with a shard outstanding")
	}
	h.do(shard(1, sluicev1.Outcome_OUTCOME_PASSED))
	if h.status("a") != sluicev1.StageStatus_STAGE_STATUS_PASSED {
		t.Fatalf("all shards passed, stage %v", h.status("a"))
	}
	if msg := h.st.GetStages()[0].GetMessage(); !strings.HasPrefix(msg, "all 3 shards passed") {
		t.Fatalf("message %q speaks for one shard", msg)
	}

	b := stage("b")
	b.Shards = 2
	h = newHarness(t, "main", b)
	h.do(Start{})
	r := failed("b", 1)
	r.Result.ShardIndex = 1
	d = h.do(r)
	if h.status("b") != sluicev1.StageStatus_STAGE_STATUS_FAILED || len(d.Cancels) != 1 {
		t.Fatalf("failed shard: stage %v, cancels %v (the other shard must be stopped)", h.status("b"), d.Cancels)
	}
	if !strings.HasPrefix(h.st.GetStages()[0].GetMessage(), "shard 2/2:") {
		t.Fatalf("message %q does not name the shard", h.st.GetStages()[0].GetMessage())
	}
}

func TestDecideTerminalRunIgnoresEverything(t *testing.T) {
	h := newHarness(t, "main", stage("a"))
	h.do(Start{})
	h.do(passed("a", 1))
	for _, in := range []Input{Tick{}, passed("a", 1), started("a", 1), MaxDelivered{Stage: "a", Attempt: 1}} {
		if d, err := h.try(in); d.State != nil || err != nil {
			t.Fatalf("%T on a passed run: state %v err %v", in, d.State != nil, err)
		}
	}
}

func TestTasksForMergesEnvAndCarriesTheRun(t *testing.T) {
	a := stage("a")
	a.Env = map[string]string{"B": "stage", "C": "c"}
	a.Pool = "gpu"
	h := newHarness(t, "main", a)
	h.st.Spec.Env = map[string]string{"A": "a", "B": "pipeline"}
	h.st.SourceDigest = "sha256:abc"
	d := h.do(Start{})
	task := d.Tasks[0]
	if task.GetEnv()["A"] != "a" || task.GetEnv()["B"] != "stage" || task.GetEnv()["C"] != "c" {
		t.Fatalf("env %v: stage env must override pipeline env", task.GetEnv())
	}
	if task.GetPool() != "gpu" || task.GetSourceDigest() != "sha256:abc" || task.GetRef() != "main" || task.GetAttempt() != 1 {
		t.Fatalf("task %v", task)
	}
}

func TestDecideConcurrencyGroupWaitsForItsLock(t *testing.T) {
	prod := stage("prod", "a")
	prod.Concurrency = &sluicev1.Concurrency{Group: "production"}
	h := newHarness(t, "main", stage("a"), prod)
	h.do(Start{})
	d := h.do(passed("a", 1))
	if h.status("prod") != sluicev1.StageStatus_STAGE_STATUS_WAITING_LOCK || len(d.Tasks) != 0 {
		t.Fatalf("prod %v, tasks %v: it must wait for its lock", h.status("prod"), taskStages(d))
	}
	if !slices.Equal(d.Acquire, []LockOp{{Group: "production", Stage: "prod"}}) {
		t.Fatalf("acquire %v", d.Acquire)
	}
	d = h.do(LockGranted{Stage: "prod"})
	if !slices.Equal(taskStages(d), []string{"prod"}) || !h.st.GetStages()[1].GetLockHeld() {
		t.Fatalf("after the grant: tasks %v, held %v", taskStages(d), h.st.GetStages()[1].GetLockHeld())
	}
	d = h.do(failed("prod", 1))
	if !slices.Equal(d.Release, []LockOp{{Group: "production", Stage: "prod"}}) || h.st.GetStages()[1].GetLockHeld() {
		t.Fatalf("a finished stage must give its lock back: release %v", d.Release)
	}
}

func TestDecideLockGrantedToACancelledStageIsGivenBack(t *testing.T) {
	prod := stage("prod")
	prod.Concurrency = &sluicev1.Concurrency{Group: "production"}
	h := newHarness(t, "main", prod)
	h.do(Start{})
	h.do(CancelIn{})
	d := h.do(LockGranted{Stage: "prod"})
	if len(d.Release) != 1 {
		t.Fatalf("release %v: a grant nobody waits for must be returned", d.Release)
	}
}

// shardResult is a final result of shard i of stage a's attempt, with the test counts the
// test kind reports and a JUnit artifact.
func shardResult(attempt, i int32, o sluicev1.Outcome, tests, failed, skipped float64) ResultIn {
	r := result("a", attempt, sluicev1.ResultPhase_RESULT_PHASE_FINAL, o)
	r.Result.ShardIndex = i
	r.Result.Message = "step 1 exited 0"
	if o != sluicev1.Outcome_OUTCOME_PASSED {
		r.Result.Message = "step 1 exited 1"
	}
	label := map[string]string{"shard": fmt.Sprintf("%d/4", i+1)}
	r.Result.Metrics = []*sluicev1.Metric{
		{Name: "tests", Value: tests, Labels: label}, {Name: "tests_failed", Value: failed, Labels: label},
		{Name: "tests_skipped", Value: skipped, Labels: label}, {Name: "test_seconds", Value: 1, Labels: label},
	}
	r.Result.Artifacts = []*sluicev1.ArtifactRef{{Name: fmt.Sprintf("junit-shard-%d.xml", i+1)}}
	return r
}

// A sharded stage's message totals every shard's tests; shards stopped because another
// failed still record their outcome, their reports and their counts.
func TestDecideShardTotals(t *testing.T) {
	const (
		pass   = sluicev1.Outcome_OUTCOME_PASSED
		fail   = sluicev1.Outcome_OUTCOME_FAILED
		cancel = sluicev1.Outcome_OUTCOME_CANCELLED
	)
	for _, tt := range []struct {
		name    string
		retries int32
		results []Input
		status  sluicev1.StageStatus
		// message is the stage's message after each result.
		messages  []string
		outcomes  []sluicev1.Outcome
		artifacts int
	}{
		{
			name:     "all pass",
			results:  []Input{shardResult(1, 0, pass, 300, 0, 2), shardResult(1, 1, pass, 200, 0, 1), shardResult(1, 2, pass, 250, 0, 0), shardResult(1, 3, pass, 100, 0, 0)},
			status:   sluicev1.StageStatus_STAGE_STATUS_PASSED,
			messages: []string{"", "", "", "847 passed, 3 skipped across 4 shards"},
			outcomes: []sluicev1.Outcome{pass, pass, pass, pass}, artifacts: 4,
		},
		{
			name:    "one fails, the others are stopped and report late",
			results: []Input{shardResult(1, 0, pass, 300, 0, 0), shardResult(1, 1, fail, 200, 2, 0), shardResult(1, 2, cancel, 250, 0, 0), shardResult(1, 3, cancel, 99, 0, 0)},
			status:  sluicev1.StageStatus_STAGE_STATUS_FAILED,
			messages: []string{"",
				"498 passed, 2 failed in 2 of 4 shards; shard 2/4: step 1 exited 1",
				"748 passed, 2 failed in 3 of 4 shards (1 cancelled); shard 2/4: step 1 exited 1",
				"847 passed, 2 failed across 4 shards (2 cancelled); shard 2/4: step 1 exited 1"},
			outcomes: []sluicev1.Outcome{pass, fail, cancel, cancel}, artifacts: 4,
		},
		{
			name:    "a retried attempt counts afresh",
			retries: 1,
			results: []Input{shardResult(1, 0, fail, 10, 1, 0), shardResult(1, 1, cancel, 5, 0, 0), Tick{},
				shardResult(2, 0, pass, 10, 0, 0), shardResult(2, 1, pass, 20, 0, 0), shardResult(2, 2, pass, 30, 0, 0), shardResult(2, 3, pass, 40, 0, 0)},
			status:   sluicev1.StageStatus_STAGE_STATUS_PASSED,
			messages: []string{"9 passed, 1 failed in 1 of 4 shards; shard 1/4: step 1 exited 1", "14 passed, 1 failed in 2 of 4 shards (1 cancelled); shard 1/4: step 1 exited 1", "", "", "", "", "100 passed across 4 shards"},
			outcomes: []sluicev1.Outcome{pass, pass, pass, pass}, artifacts: 2 + 4,
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a := stage("a")
			a.Shards, a.Retries = 4, tt.retries
			h := newHarness(t, "main", a)
			h.do(Start{})
			for k, in := range tt.results {
				if _, ok := in.(Tick); ok {
					h.now = h.now.Add(time.Hour)
				}
				h.do(in)
				if want := tt.messages[k]; want != "" {
					if got := h.st.GetStages()[0].GetMessage(); got != want {
						t.Fatalf("after result %d: message %q, want %q", k+1, got, want)
					}
				}
			}
			s := h.st.GetStages()[0]
			if s.GetStatus() != tt.status {
				t.Fatalf("stage %v, want %v", s.GetStatus(), tt.status)
			}
			for k, sh := range s.GetShards() {
				if sh.GetOutcome() != tt.outcomes[k] || sh.GetPhase() != sluicev1.ResultPhase_RESULT_PHASE_FINAL {
					t.Errorf("shard %d: %v %v, want final %v", k+1, sh.GetPhase(), sh.GetOutcome(), tt.outcomes[k])
				}
			}
			if len(s.GetArtifacts()) != tt.artifacts {
				t.Errorf("%d artifacts, want %d (every shard's JUnit)", len(s.GetArtifacts()), tt.artifacts)
			}
		})
	}
}
