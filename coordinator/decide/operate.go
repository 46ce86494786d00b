package decide

import (
	"fmt"
	"slices"
	"strconv"

	sluicev1 "github.com/sluice-ci/sluice/proto/sluice/v1"
)

// retry reopens a finished run at stage: the stage and every stage after it (by needs) that
// did not pass go back to pending, and the run goes on as if they had not run. Attempts
// carry on from the last one, so the new tasks' ids are new.
func (d *decider) retry(in RetryIn) bool {
	i, s := d.stage(in.Stage)
	switch {
	case s == nil:
		d.err = fmt.Errorf("%w: run %s has no stage %q", ErrNotFound, d.st.GetId(), in.Stage)
		return false
	case d.st.GetStatus() == sluicev1.RunStatus_RUN_STATUS_PASSED:
		d.err = fmt.Errorf("%w: run %s passed; there is nothing to retry", ErrConflict, d.st.GetId())
		return false
	case s.GetStatus() != sluicev1.StageStatus_STAGE_STATUS_FAILED && s.GetStatus() != sluicev1.StageStatus_STAGE_STATUS_CANCELLED:
		d.err = fmt.Errorf("%w: stage %s %s; only a failed or cancelled stage is retried", ErrConflict, in.Stage, verbOf(s.GetStatus()))
		return false
	}
	reopen := map[int]bool{i: true}
	for grew := true; grew; {
		grew = false
		for j, spec := range d.st.GetSpec().GetStages() {
			if reopen[j] || d.st.GetStages()[j].GetStatus() == sluicev1.StageStatus_STAGE_STATUS_PASSED {
				continue
			}
			for _, need := range spec.GetNeeds() {
				if k, _ := d.stage(need); k >= 0 && reopen[k] {
					reopen[j], grew = true, true
					break
				}
			}
		}
	}
	var names []string
	for j, st := range d.st.GetStages() {
		if !reopen[j] {
			continue
		}
		names = append(names, st.GetName())
		st.Status = sluicev1.StageStatus_STAGE_STATUS_PENDING
		st.Message = ""
		st.StartedAt, st.FinishedAt, st.Deadline, st.RetryAt = nil, nil, nil, nil
		st.Shards, st.Findings, st.Metrics, st.FindingsOmitted = nil, nil, nil, 0
		st.Rollout = nil
	}
	d.st.Status = sluicev1.RunStatus_RUN_STATUS_RUNNING
	d.st.FinishedAt = nil
	d.st.Message = fmt.Sprintf("retried from %s by %s", in.Stage, in.By)
	ev := d.emit("run.retried", in.Stage, s.GetAttempt(), fmt.Sprintf("%s retried by %s; running again: %v", in.Stage, in.By, names))
	ev.Detail = map[string]string{"by": in.By, "stages": fmt.Sprint(names)}
	d.advance()
	return true
}

// rolloutCmd carries out `sluice rollout ACTION` on the rollout of in.Stage, or on the
// run's only rollout in progress.
func (d *decider) rolloutCmd(in RolloutCmd) bool {
	if !slices.Contains(RolloutActions, in.Action) {
		d.err = fmt.Errorf("%w: rollout action %q: want one of %v", ErrConflict, in.Action, RolloutActions)
		return false
	}
	i, s := d.activeRollout(in.Stage)
	if s == nil {
		return false
	}
	ro := s.GetRollout()
	steps := d.spec(i).GetRollout().GetSteps()
	detail := map[string]string{"by": in.By, "step": strconv.Itoa(int(ro.GetStep() + 1)), "weight": strconv.Itoa(int(ro.GetWeight()))}
	switch in.Action {
	case RolloutAbort:
		reason := "aborted by " + in.By
		if in.Reason != "" {
			reason += ": " + in.Reason
		}
		if ro.GetPhase() == phaseRollingBack {
			d.err = fmt.Errorf("%w: the rollout of %s is rolling back already", ErrConflict, s.GetName())
			return false
		}
		d.rollback(i, s, reason)
		return true
	case RolloutPause:
		if ro.GetHeld() {
			d.err = fmt.Errorf("%w: the rollout of %s is paused already, by %s", ErrConflict, s.GetName(), ro.GetHeldBy())
			return false
		}
		ro.Held, ro.HeldBy = true, in.By
		ev := d.emit("rollout.paused", s.GetName(), s.GetAttempt(), fmt.Sprintf("paused by %s at %d%%: `sluice rollout resume %s` lets it go on", in.By, ro.GetWeight(), d.st.GetId()))
		ev.Detail = detail
		return true
	case RolloutResume:
		if !ro.GetHeld() {
			d.err = fmt.Errorf("%w: the rollout of %s is not paused", ErrConflict, s.GetName())
			return false
		}
		ro.Held, ro.HeldBy = false, ""
		ev := d.emit("rollout.resumed", s.GetName(), s.GetAttempt(), fmt.Sprintf("resumed by %s at %d%%", in.By, ro.GetWeight()))
		ev.Detail = detail
		if heldBeforeStep(ro) {
			d.beginStep(i, s, ro.GetStep())
		}
		return true
	}
	// Promote: skip what the current step waits for (its pause, its analysis, a freeze).
	switch ro.GetPhase() {
	case phasePaused, phaseFrozen:
	case phaseAnalysing:
		d.cancels = append(d.cancels, &sluicev1.CancelSignal{RunId: d.st.GetId(), Stage: s.GetName(), Attempt: s.GetAttempt(), RolloutSeq: ro.GetSeq(), Reason: "promoted by " + in.By})
	default:
		d.err = fmt.Errorf("%w: the rollout of %s is %s: promote skips a pause or an analysis (approve a step that waits for approval)", ErrConflict, s.GetName(), PhaseName(ro.GetPhase()))
		return false
	}
	ev := d.emit("rollout.skipped", s.GetName(), s.GetAttempt(), fmt.Sprintf("step %d/%d's %s skipped by %s", ro.GetStep()+1, len(steps), PhaseName(ro.GetPhase()), in.By))
	ev.Detail = detail
	next := ro.GetStep() + 1
	if heldBeforeStep(ro) {
		next = ro.GetStep()
	}
	ro.PauseUntil, ro.Reason = nil, ""
	ro.Held, ro.HeldBy = false, ""
	s.Deadline = nil
	d.beginStep(i, s, next)
	return true
}

// activeRollout is the rollout in progress of stage name, or the run's only one when name
// is ""; d.err says why there is none.
func (d *decider) activeRollout(name string) (int, *sluicev1.StageState) {
	if name != "" {
		i, s := d.stage(name)
		switch {
		case s == nil:
			d.err = fmt.Errorf("%w: run %s has no stage %q", ErrNotFound, d.st.GetId(), name)
		case !rolloutActive(s):
			d.err = fmt.Errorf("%w: stage %s has no rollout in progress", ErrConflict, name)
		default:
			return i, s
		}
		return -1, nil
	}
	found, at := []string{}, -1
	for i, s := range d.st.GetStages() {
		if rolloutActive(s) {
			found, at = append(found, s.GetName()), i
		}
	}
	switch len(found) {
	case 0:
		d.err = fmt.Errorf("%w: run %s has no rollout in progress", ErrConflict, d.st.GetId())
	case 1:
		return at, d.st.GetStages()[at]
	default:
		d.err = fmt.Errorf("%w: run %s has rollouts in progress in %v: name the stage", ErrConflict, d.st.GetId(), found)
	}
	return -1, nil
}

// held keeps a paused rollout (RolloutState.held) from beginning step k: it waits before
// it, at the weight it has, until resumed. Approving the step it waits on is not held, nor
// the promotion after the last step (no traffic moves then).
func (d *decider) held(i int, s *sluicev1.StageState, k int32) bool {
	ro := s.GetRollout()
	if !ro.GetHeld() || int(k) >= len(d.spec(i).GetRollout().GetSteps()) || k == ro.GetStep() && ro.GetPhase() == phaseWaiting {
		return false
	}
	ro.Step, ro.Phase, ro.PauseUntil = k, phasePaused, nil
	s.Message = fmt.Sprintf("paused by %s at %d%%, before step %d", ro.GetHeldBy(), ro.GetWeight(), k+1)
	return true
}

// heldBeforeStep: the rollout waits, held, before its step (not in a step's timed pause).
func heldBeforeStep(ro *sluicev1.RolloutState) bool {
	return ro.GetPhase() == phasePaused && ro.GetPauseUntil() == nil
}
