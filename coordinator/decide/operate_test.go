package decide

import (
	"errors"
	"slices"
	"testing"
	"time"

	sluicev1 "github.com/sluice-ci/sluice/proto/sluice/v1"
)

func rolloutCmd(action string) RolloutCmd {
	return RolloutCmd{Action: action, By: "approver:alice"}
}

// Paused during an analysis, a rollout finishes it but does not begin its next step; it
// waits at its weight until resumed, and an unhealthy verdict still rolls it back.
func TestRolloutPauseHoldsTheNextStepUntilResumed(t *testing.T) {
	h := newRollout(t)
	h.pass()
	h.pass()
	h.expect(analyse, 10)
	h.step(rolloutCmd(RolloutPause))
	if !h.rollout().GetHeld() || h.rollout().GetHeldBy() != "approver:alice" || !slices.Contains(h.events(), "rollout.paused") {
		t.Fatalf("after pause: rollout %v, events %v", h.rollout(), h.events())
	}
	if _, err := h.try(rolloutCmd(RolloutPause)); !errors.Is(err, ErrConflict) {
		t.Fatalf("pausing twice: %v, want ErrConflict", err)
	}
	h.answer(sluicev1.Outcome_OUTCOME_PASSED, healthy())
	if len(h.d.Tasks) != 0 || h.rollout().GetPhase() != phasePaused || h.rollout().GetWeight() != 10 || h.rollout().GetStep() != 1 {
		t.Fatalf("a healthy verdict while paused dispatched %d tasks, rollout %v; want it held at 10%% before step 2", len(h.d.Tasks), h.rollout())
	}
	// Time passes: nothing moves.
	h.now = h.now.Add(time.Hour)
	if d := h.do(Tick{}); d.State != nil {
		t.Fatalf("a tick moved a held rollout: %v", h.rollout())
	}
	h.step(rolloutCmd(RolloutResume))
	h.expect(shift, 50)
	if h.rollout().GetHeld() || !slices.Contains(h.events(), "rollout.resumed") {
		t.Fatalf("after resume: rollout %v, events %v", h.rollout(), h.events())
	}
	// Paused again, an unhealthy verdict rolls back all the same.
	h.pass()
	h.step(rolloutCmd(RolloutPause))
	h.answer(sluicev1.Outcome_OUTCOME_FAILED, unhealthy())
	h.expect(rollback, 0)
}

// Promote skips what the current step waits for: its analysis (whose task is cancelled
// and whose late verdict is ignored), a timed pause, or a hold.
func TestRolloutPromoteSkipsTheCurrentWait(t *testing.T) {
	h := newRollout(t)
	h.pass()
	h.pass()
	h.expect(analyse, 10)
	analysis := h.task
	d := h.step(rolloutCmd(RolloutPromote))
	h.expect(shift, 50)
	if len(d.Cancels) != 1 || d.Cancels[0].GetRolloutSeq() != analysis.GetRollout().GetSeq() || !slices.Contains(h.events(), "rollout.skipped") {
		t.Fatalf("promote during an analysis: cancels %v, events %v", d.Cancels, h.events())
	}
	late := ResultIn{Result: &sluicev1.Result{RunId: "r1", Stage: "production", Attempt: 1, Phase: sluicev1.ResultPhase_RESULT_PHASE_FINAL,
		Outcome: sluicev1.Outcome_OUTCOME_FAILED, RolloutSeq: analysis.GetRollout().GetSeq(), Verdict: unhealthy()}}
	if d := h.do(late); d.State != nil {
		t.Fatalf("the skipped analysis's late verdict changed the rollout: %v", h.rollout())
	}
	// A rollout without analysis: promote ends a timed pause at once.
	p := newRollout(t, func(r *sluicev1.RolloutSpec) { r.Analysis = nil })
	p.pass()
	p.pass()
	if p.rollout().GetPhase() != phasePaused || p.rollout().GetPauseUntil() == nil {
		t.Fatalf("rollout %v, want a timed pause at 10%%", p.rollout())
	}
	p.step(rolloutCmd(RolloutPromote))
	p.expect(shift, 50)
	// Held before a step, promote begins that step (not the one after).
	p.step(rolloutCmd(RolloutPause))
	p.pass()
	p.now = p.now.Add(2 * time.Minute)
	p.do(Tick{})
	if p.rollout().GetPhase() != phasePaused || p.rollout().GetPauseUntil() != nil || p.rollout().GetStep() != 2 {
		t.Fatalf("rollout %v, want it held before step 3", p.rollout())
	}
	p.step(rolloutCmd(RolloutPromote))
	p.expect(shift, 100)
	if _, err := p.try(rolloutCmd(RolloutPromote)); !errors.Is(err, ErrConflict) {
		t.Fatalf("promote while shifting: %v, want ErrConflict (nothing to skip)", err)
	}
}

// Abort rolls the canary back, as rollback does, and the stage fails.
func TestRolloutAbortRollsBack(t *testing.T) {
	h := newRollout(t)
	h.pass()
	h.pass()
	h.step(RolloutCmd{Action: RolloutAbort, By: "approver:alice", Reason: "wrong build"})
	h.expect(rollback, 0)
	h.pass()
	if h.status("production") != sluicev1.StageStatus_STAGE_STATUS_FAILED || h.rollout().GetPhase() != phaseRolledBack ||
		h.rollout().GetReason() != "aborted by approver:alice: wrong build" {
		t.Fatalf("after abort: stage %v, rollout %v", h.status("production"), h.rollout())
	}
	if _, err := h.try(rolloutCmd(RolloutAbort)); !errors.Is(err, ErrConflict) {
		t.Fatalf("abort of a finished run: %v, want ErrConflict", err)
	}
}

func TestRolloutCmdRefusals(t *testing.T) {
	two := rolloutStage()
	other := rolloutStage()
	other.Name = "eu"
	h := newHarness(t, "main", two, other)
	h.do(Start{})
	tests := []struct {
		name string
		in   RolloutCmd
		want error
	}{
		{"unknown action", RolloutCmd{Action: "dance"}, ErrConflict},
		{"two rollouts, no stage named", rolloutCmd(RolloutPause), ErrConflict},
		{"no such stage", RolloutCmd{Action: RolloutPause, Stage: "nope"}, ErrNotFound},
		{"resume what is not paused", RolloutCmd{Action: RolloutResume, Stage: "eu"}, ErrConflict},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := h.try(tt.in); !errors.Is(err, tt.want) {
				t.Fatalf("%+v: %v, want %v", tt.in, err, tt.want)
			}
		})
	}
	if d := h.do(RolloutCmd{Action: RolloutPause, Stage: "eu"}); d.State == nil {
		t.Fatal("pausing a named rollout changed nothing")
	}
}

// Retrying a failed stage of a finished run reopens the run: the stage runs again as its
// next attempt, the stages skipped after it run, the ones that passed stay passed.
func TestRetryReopensAFailedRun(t *testing.T) {
	h := newHarness(t, "main", stage("a"), stage("b", "a"), stage("c", "b"), stage("d", "a"))
	h.do(Start{})
	h.do(passed("a", 1))
	h.do(passed("d", 1))
	h.do(failed("b", 1))
	if h.st.GetStatus() != sluicev1.RunStatus_RUN_STATUS_FAILED || h.status("c") != sluicev1.StageStatus_STAGE_STATUS_SKIPPED {
		t.Fatalf("run %v, c %v; want failed with c skipped", h.st.GetStatus(), h.status("c"))
	}
	for _, tt := range []struct {
		in   RetryIn
		want error
	}{{RetryIn{Stage: "a"}, ErrConflict}, {RetryIn{Stage: "nope"}, ErrNotFound}} {
		if _, err := h.try(tt.in); !errors.Is(err, tt.want) {
			t.Errorf("retry %s: %v, want %v", tt.in.Stage, err, tt.want)
		}
	}
	d := h.do(RetryIn{Stage: "b", By: "approver:alice"})
	if h.st.GetStatus() != sluicev1.RunStatus_RUN_STATUS_RUNNING || len(d.Tasks) != 1 || d.Tasks[0].GetStage() != "b" || d.Tasks[0].GetAttempt() != 2 {
		t.Fatalf("after retry: run %v, tasks %v; want b dispatched as attempt 2", h.st.GetStatus(), taskStages(d))
	}
	if h.status("a") != sluicev1.StageStatus_STAGE_STATUS_PASSED || h.status("c") != sluicev1.StageStatus_STAGE_STATUS_PENDING || !slices.Contains(eventTypes(d), "run.retried:b") {
		t.Fatalf("a %v, c %v, events %v", h.status("a"), h.status("c"), eventTypes(d))
	}
	if _, err := h.try(RetryIn{Stage: "b"}); !errors.Is(err, ErrConflict) {
		t.Fatalf("retry of a running run: %v, want ErrConflict", err)
	}
	h.do(passed("b", 2))
	h.do(passed("c", 1))
	if h.st.GetStatus() != sluicev1.RunStatus_RUN_STATUS_PASSED {
		t.Fatalf("run %v after the retried stages passed", h.st.GetStatus())
	}
}
