package decide

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluice-ci/sluice/coordinator/internal/fixture"
	sluicev1 "github.com/sluice-ci/sluice/proto/sluice/v1"
)

// rolloutStage is a traffic-shift stage: deploy, then 10% -> 50% -> 100% with analysed pauses.
// rolloutHarness tracks the action the coordinator last handed out.
type rolloutHarness struct {
	*harness
	task *sluicev1.Task
	d    Decision
}

func newRollout(t *testing.T, mutate ...func(*sluicev1.RolloutSpec)) *rolloutHarness {
	t.Helper()
	h := &rolloutHarness{harness: newHarness(t, "main", rolloutStage(mutate...))}
	h.step(Start{})
	return h
}

// step applies in and remembers the task handed out, if any.
func (h *rolloutHarness) step(in Input) Decision {
	h.t.Helper()
	h.d = h.do(in)
	if len(h.d.Tasks) > 1 {
		h.t.Fatalf("%d tasks at once; a rollout hands out one action at a time", len(h.d.Tasks))
	}
	if len(h.d.Tasks) == 1 {
		h.task = h.d.Tasks[0]
	}
	return h.d
}

// expect asserts the current action.
func (h *rolloutHarness) expect(action sluicev1.RolloutAction, weight int32) {
	h.t.Helper()
	if h.task == nil || h.task.GetRollout().GetAction() != action || h.task.GetRollout().GetWeight() != weight {
		h.t.Fatalf("current action %v, want %v at %d%%", h.task.GetRollout(), action, weight)
	}
}

// answer reports the current action's result from a worker.
func (h *rolloutHarness) answer(outcome sluicev1.Outcome, v *sluicev1.Verdict) Decision {
	h.t.Helper()
	current := h.task
	h.task = nil
	return h.step(ResultIn{Result: &sluicev1.Result{
		RunId: "r1", Stage: "production", Attempt: 1, Phase: sluicev1.ResultPhase_RESULT_PHASE_FINAL,
		Outcome: outcome, RolloutSeq: current.GetRollout().GetSeq(), Verdict: v, Worker: "w", Message: "from worker",
	}})
}

func (h *rolloutHarness) pass() Decision { return h.answer(sluicev1.Outcome_OUTCOME_PASSED, nil) }

func (h *rolloutHarness) rollout() *sluicev1.RolloutState { return h.st.GetStages()[0].GetRollout() }

func (h *rolloutHarness) events() []string {
	var out []string
	for _, e := range h.d.State.GetOutbox() {
		out = append(out, e.GetType())
	}
	return out
}

// The rollout fixtures the planner tests share.
var rolloutStage, healthy, unhealthy = fixture.Rollout, fixture.Healthy, fixture.Unhealthy

const (
	deploy   = sluicev1.RolloutAction_ROLLOUT_ACTION_DEPLOY
	shift    = sluicev1.RolloutAction_ROLLOUT_ACTION_SET_WEIGHT
	analyse  = sluicev1.RolloutAction_ROLLOUT_ACTION_ANALYSE
	rollback = sluicev1.RolloutAction_ROLLOUT_ACTION_ROLLBACK
)

func TestRolloutHealthyCanaryIsPromotedStepByStep(t *testing.T) {
	h := newRollout(t)
	h.expect(deploy, 0)
	var events []string
	collect := func() { events = append(events, h.events()...) }
	h.pass()
	collect()
	h.expect(shift, 10)
	h.pass()
	collect()
	h.expect(analyse, 10)
	if got := h.task.GetRollout().GetDuration().AsDuration(); got != time.Minute {
		t.Fatalf("analysis for %s, want the step's pause", got)
	}
	if got := h.task.GetTimeout().AsDuration(); got < time.Minute+20*time.Second {
		t.Fatalf("analysis task timeout %s does not cover the pause", got)
	}
	h.answer(sluicev1.Outcome_OUTCOME_PASSED, healthy())
	collect()
	h.expect(shift, 50)
	h.pass()
	collect()
	h.expect(analyse, 50)
	h.answer(sluicev1.Outcome_OUTCOME_PASSED, &sluicev1.Verdict{Outcome: sluicev1.VerdictOutcome_VERDICT_OUTCOME_INCONCLUSIVE, Message: "3 samples < 50"})
	collect()
	h.expect(analyse, 50)
	h.answer(sluicev1.Outcome_OUTCOME_PASSED, healthy())
	collect()
	h.expect(shift, 100)
	h.pass()
	collect()
	if h.status("production") != sluicev1.StageStatus_STAGE_STATUS_PASSED || h.rollout().GetPhase() != phasePromoted || h.rollout().GetWeight() != 100 {
		t.Fatalf("stage %v, rollout %v", h.status("production"), h.rollout())
	}
	want := []string{
		"rollout.step_started", "traffic.shifted", "analysis.verdict",
		"rollout.step_started", "traffic.shifted", "analysis.verdict", "analysis.verdict",
		"rollout.step_started", "traffic.shifted", "rollout.promoted", "stage.passed", "run.passed",
	}
	var got []string
	for _, e := range events {
		if strings.HasPrefix(e, "rollout.") || strings.HasPrefix(e, "traffic.") || strings.HasPrefix(e, "analysis.") || e == "stage.passed" || e == "run.passed" {
			got = append(got, e)
		}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("events\n got %v\nwant %v", got, want)
	}
	if n := len(h.rollout().GetVerdicts()); n != 3 {
		t.Fatalf("%d verdicts recorded, want 3", n)
	}
}

func TestRolloutUnhealthyVerdictRollsBack(t *testing.T) {
	h := newRollout(t)
	h.pass()
	h.pass()
	h.expect(analyse, 10)
	h.answer(sluicev1.Outcome_OUTCOME_FAILED, unhealthy())
	h.expect(rollback, 0)
	if h.status("production") == sluicev1.StageStatus_STAGE_STATUS_FAILED {
		t.Fatal("stage failed before the traffic went back to stable")
	}
	h.pass()
	if h.status("production") != sluicev1.StageStatus_STAGE_STATUS_FAILED || h.rollout().GetPhase() != phaseRolledBack || h.rollout().GetWeight() != 0 {
		t.Fatalf("after rollback: stage %v, rollout %v", h.status("production"), h.rollout())
	}
	if !slices.Contains(h.events(), "rollout.rolled_back") || h.st.GetStatus() != sluicev1.RunStatus_RUN_STATUS_FAILED {
		t.Fatalf("events %v, run %v", h.events(), h.st.GetStatus())
	}
	if msg := h.st.GetStages()[0].GetMessage(); !strings.Contains(msg, "unhealthy at 10%") || !strings.Contains(msg, "1.5 x baseline") {
		t.Fatalf("stage message %q does not carry the verdict", msg)
	}
}

func TestRolloutFailuresAndLostActionsRollBack(t *testing.T) {
	tests := []struct {
		name string
		// fail breaks the rollout while it analyses 10%.
		fail func(h *rolloutHarness)
		want string
	}{
		{"analysis could not run", func(h *rolloutHarness) { h.answer(sluicev1.Outcome_OUTCOME_ERROR, nil) }, "the analysis did not run"},
		{"no result before the deadline", func(h *rolloutHarness) {
			h.step(ResultIn{Result: &sluicev1.Result{RunId: "r1", Stage: "production", Attempt: 1, Phase: sluicev1.ResultPhase_RESULT_PHASE_STARTED, RolloutSeq: h.task.GetRollout().GetSeq(), Worker: "w"}})
			h.now = NextWake(h.st)
			h.step(Tick{})
		}, "no result for analyse"},
		{"deliveries exhausted", func(h *rolloutHarness) {
			h.step(MaxDelivered{Stage: "production", Attempt: 1, RolloutSeq: h.task.GetRollout().GetSeq(), Deliveries: 5})
		}, "delivered 5 times"},
		{"manual rollback", func(h *rolloutHarness) {
			d := h.step(RollbackIn{Reason: "checkout errors", By: "alice"})
			if len(d.Cancels) != 1 || d.Cancels[0].GetRolloutSeq() == 0 {
				h.t.Fatalf("cancels %v: the analysis in flight must be stopped, and only it", d.Cancels)
			}
		}, "requested by alice: checkout errors"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newRollout(t)
			h.pass()
			h.pass()
			h.expect(analyse, 10)
			tt.fail(h)
			h.expect(rollback, 0)
			if r := h.rollout().GetReason(); !strings.Contains(r, tt.want) {
				t.Fatalf("reason %q lacks %q", r, tt.want)
			}
			h.pass()
			if h.rollout().GetPhase() != phaseRolledBack {
				t.Fatalf("rollout %v", h.rollout())
			}
		})
	}
}

func TestRolloutIgnoresResultsOfEarlierActions(t *testing.T) {
	h := newRollout(t)
	deployTask := h.task
	h.pass()
	h.expect(shift, 10)
	late := &sluicev1.Result{RunId: "r1", Stage: "production", Attempt: 1, Phase: sluicev1.ResultPhase_RESULT_PHASE_FINAL,
		Outcome: sluicev1.Outcome_OUTCOME_FAILED, RolloutSeq: deployTask.GetRollout().GetSeq()}
	if d := h.do(ResultIn{Result: late}); d.State != nil {
		t.Fatal("a late result of the deploy changed the rollout")
	}
}

func TestRolloutDeployFailureFailsWithoutTraffic(t *testing.T) {
	h := newRollout(t)
	h.answer(sluicev1.Outcome_OUTCOME_FAILED, nil)
	if h.status("production") != sluicev1.StageStatus_STAGE_STATUS_FAILED || len(h.d.Tasks) != 0 {
		t.Fatalf("stage %v, tasks %v", h.status("production"), h.d.Tasks)
	}
	if msg := h.st.GetStages()[0].GetMessage(); !strings.HasPrefix(msg, "deploying the canary failed") {
		t.Fatalf("message %q", msg)
	}
}

func TestRolloutFreezeHoldsTheWeightUntilAHumanDecides(t *testing.T) {
	for _, decide := range []string{"approve", "rollback"} {
		t.Run(decide, func(t *testing.T) {
			h := newRollout(t, func(r *sluicev1.RolloutSpec) { r.OnFailure = "freeze" })
			h.pass()
			h.pass()
			h.answer(sluicev1.Outcome_OUTCOME_FAILED, unhealthy())
			if h.rollout().GetPhase() != phaseFrozen || len(h.d.Tasks) != 0 || h.rollout().GetWeight() != 10 {
				t.Fatalf("rollout %v, tasks %v: freeze holds the weight and does nothing", h.rollout(), h.d.Tasks)
			}
			if decide == "approve" {
				h.step(ApproveIn{Stage: "production", By: "bob"})
				h.expect(shift, 50)
				return
			}
			h.step(RollbackIn{By: "bob"})
			h.expect(rollback, 0)
		})
	}
}

func TestRolloutStepApproval(t *testing.T) {
	h := newRollout(t, func(r *sluicev1.RolloutSpec) { r.Steps[1].Approval = true })
	h.pass()
	h.pass()
	h.answer(sluicev1.Outcome_OUTCOME_PASSED, healthy())
	if h.rollout().GetPhase() != phaseWaiting || len(h.d.Tasks) != 0 {
		t.Fatalf("rollout %v: step 2 must wait for approval", h.rollout())
	}
	if _, err := h.try(ApproveIn{Stage: "nope"}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("approving an unknown stage: %v", err)
	}
	h.step(ApproveIn{Stage: "production", By: "carol"})
	h.expect(shift, 50)
	if _, err := h.try(ApproveIn{Stage: "production", By: "carol"}); !errors.Is(err, ErrConflict) {
		t.Fatalf("approving a shifting rollout: %v, want ErrConflict", err)
	}
}

func TestRolloutPauseWithoutAnalysisWaitsOnTheClock(t *testing.T) {
	h := newRollout(t, func(r *sluicev1.RolloutSpec) { r.Analysis = nil; r.Deploy = nil })
	h.expect(shift, 10)
	h.pass()
	if h.rollout().GetPhase() != phasePaused || len(h.d.Tasks) != 0 {
		t.Fatalf("rollout %v", h.rollout())
	}
	wake := NextWake(h.st)
	if !wake.Equal(h.now.Add(time.Minute)) {
		t.Fatalf("wake %v, want the end of the pause", wake)
	}
	if d := h.step(Tick{}); d.State != nil {
		t.Fatal("pause ended early")
	}
	h.now = wake
	h.step(Tick{})
	h.expect(shift, 50)
}

func TestRolloutFailingRollbackGivesUpAskingForAHuman(t *testing.T) {
	h := newRollout(t)
	h.pass()
	h.pass()
	h.answer(sluicev1.Outcome_OUTCOME_FAILED, unhealthy())
	for range maxRollbackAttempts {
		h.expect(rollback, 0)
		h.answer(sluicev1.Outcome_OUTCOME_ERROR, nil)
	}
	if h.status("production") != sluicev1.StageStatus_STAGE_STATUS_FAILED || !strings.Contains(h.st.GetStages()[0].GetMessage(), "fix the router by hand") {
		t.Fatalf("stage %v: %q", h.status("production"), h.st.GetStages()[0].GetMessage())
	}
}

func TestRollbackWithoutRolloutIsAConflict(t *testing.T) {
	h := newHarness(t, "main", stage("a"))
	h.do(Start{})
	if _, err := h.try(RollbackIn{}); !errors.Is(err, ErrConflict) {
		t.Fatalf("rollback of a run without a rollout: %v", err)
	}
	r := newRollout(t)
	r.pass()
	r.pass()
	r.answer(sluicev1.Outcome_OUTCOME_PASSED, healthy())
	r.pass()
	r.answer(sluicev1.Outcome_OUTCOME_PASSED, healthy())
	r.pass()
	if _, err := r.try(RollbackIn{}); !errors.Is(err, ErrConflict) {
		t.Fatalf("rollback after promotion: %v", err)
	}
}

func TestTasksForRebuildsTheCurrentRolloutAction(t *testing.T) {
	h := newRollout(t)
	h.pass()
	h.expect(shift, 10)
	rebuilt := TasksFor(h.st, 0)
	if len(rebuilt) != 1 || rebuilt[0].GetRollout().GetSeq() != h.task.GetRollout().GetSeq() || rebuilt[0].GetRollout().GetWeight() != 10 {
		t.Fatalf("rebuilt %v, want the task handed out", rebuilt)
	}
}

func TestRolloutNeverPromotesOnNoEvidence(t *testing.T) {
	h := newRollout(t)
	h.pass()
	h.pass()
	inconclusive := &sluicev1.Verdict{Outcome: sluicev1.VerdictOutcome_VERDICT_OUTCOME_INCONCLUSIVE, Message: "canary served 14 requests, fewer than min_samples 20"}
	for range maxInconclusive {
		h.expect(analyse, 10)
		h.answer(sluicev1.Outcome_OUTCOME_PASSED, inconclusive)
	}
	if h.rollout().GetPhase() != phaseFrozen || h.rollout().GetWeight() != 10 || len(h.d.Tasks) != 0 {
		t.Fatalf("rollout %v after %d inconclusive analyses: it must hold at 10%% for a human", h.rollout(), maxInconclusive)
	}
	if !strings.Contains(h.rollout().GetReason(), "not enough data") {
		t.Fatalf("reason %q", h.rollout().GetReason())
	}
}
