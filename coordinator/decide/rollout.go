package decide

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	sluicev1 "github.com/sluice-ci/sluice/proto/sluice/v1"
)

// A traffic-shift stage with a rollout is state in the run, not a loop in a worker: the
// coordinator hands out one action at a time (deploy, shift to W%, analyse for the step's
// pause, roll back) and decides the next from its result. So any worker can take the next
// action, a coordinator can die between two, a step can wait for approval, and a human can
// roll back at any moment.

// maxInconclusive is how many analyses of one step may lack the data to judge before the
// rollout freezes for a human: a gate does not promote on no evidence.
const maxInconclusive = 3

// maxRollbackAttempts bounds the retries of a failing rollback before the stage fails
// asking for a human.
const maxRollbackAttempts = 3

// Timeouts of the rollout actions that have no duration of their own.
const (
	shiftTimeout     = 2 * time.Minute
	analysisSlack    = time.Minute
	defaultAnalysisI = 30 * time.Second
)

type rolloutPhase = sluicev1.RolloutPhase

const (
	phaseDeploying   = sluicev1.RolloutPhase_ROLLOUT_PHASE_DEPLOYING
	phaseWaiting     = sluicev1.RolloutPhase_ROLLOUT_PHASE_WAITING_APPROVAL
	phaseShifting    = sluicev1.RolloutPhase_ROLLOUT_PHASE_SHIFTING
	phaseAnalysing   = sluicev1.RolloutPhase_ROLLOUT_PHASE_ANALYSING
	phasePaused      = sluicev1.RolloutPhase_ROLLOUT_PHASE_PAUSED
	phaseFrozen      = sluicev1.RolloutPhase_ROLLOUT_PHASE_FROZEN
	phaseRollingBack = sluicev1.RolloutPhase_ROLLOUT_PHASE_ROLLING_BACK
	phasePromoted    = sluicev1.RolloutPhase_ROLLOUT_PHASE_PROMOTED
	phaseRolledBack  = sluicev1.RolloutPhase_ROLLOUT_PHASE_ROLLED_BACK
)

// rolloutActive reports whether s is a rollout that has not ended.
func rolloutActive(s *sluicev1.StageState) bool {
	ro := s.GetRollout()
	return ro != nil && !s.GetStatus().Terminal() && ro.GetPhase() != phasePromoted && ro.GetPhase() != phaseRolledBack
}

// startRollout begins the rollout of stage i, dispatched as attempt 1.
func (d *decider) startRollout(i int, s *sluicev1.StageState) {
	s.Rollout = &sluicev1.RolloutState{}
	deploy := d.spec(i).GetRollout().GetDeploy()
	if len(deploy.GetRun()) == 0 && deploy.GetHealth().GetUrl() == "" {
		d.beginStep(i, s, 0)
		return
	}
	s.Rollout.Phase = phaseDeploying
	d.queueAction(i, s)
}

// queueAction publishes the action the rollout's phase calls for, under a new sequence.
func (d *decider) queueAction(i int, s *sluicev1.StageState) {
	s.Rollout.Seq++
	s.Shards = []*sluicev1.ShardState{{Index: 0}}
	s.Deadline = nil
	d.tasks = append(d.tasks, TasksFor(d.st, i)...)
}

// rolloutTask is the task of the rollout's current action, or nil while it waits.
func rolloutTask(spec *sluicev1.StageSpec, ro *sluicev1.RolloutState) *sluicev1.RolloutTask {
	steps := spec.GetRollout().GetSteps()
	t := &sluicev1.RolloutTask{Step: ro.GetStep(), Seq: ro.GetSeq()}
	switch ro.GetPhase() {
	case phaseDeploying:
		t.Action = sluicev1.RolloutAction_ROLLOUT_ACTION_DEPLOY
	case phaseShifting:
		t.Action = sluicev1.RolloutAction_ROLLOUT_ACTION_SET_WEIGHT
		t.Weight = steps[ro.GetStep()].GetWeight()
	case phaseAnalysing:
		t.Action = sluicev1.RolloutAction_ROLLOUT_ACTION_ANALYSE
		t.Weight = ro.GetWeight()
		t.Duration = steps[ro.GetStep()].GetPause()
	case phaseRollingBack:
		t.Action = sluicev1.RolloutAction_ROLLOUT_ACTION_ROLLBACK
	default:
		return nil
	}
	return t
}

// actionTimeout bounds one rollout action on the worker.
func actionTimeout(spec *sluicev1.StageSpec, t *sluicev1.RolloutTask) time.Duration {
	switch t.GetAction() {
	case sluicev1.RolloutAction_ROLLOUT_ACTION_DEPLOY:
		return spec.GetTimeout().AsDuration()
	case sluicev1.RolloutAction_ROLLOUT_ACTION_ANALYSE:
		interval := spec.GetRollout().GetAnalysis().GetInterval().AsDuration()
		if interval <= 0 {
			interval = defaultAnalysisI
		}
		// An unhealthy interval below failure_limit extends the analysis by up to
		// failure_limit-1 intervals.
		extra := time.Duration(max(spec.GetRollout().GetAnalysis().GetFailureLimit(), 1)+1) * interval
		return t.GetDuration().AsDuration() + extra + analysisSlack
	}
	return shiftTimeout
}

// beginStep starts rollout step k: wait for approval if the step asks for it, else shift.
// Past the last step the canary is promoted.
func (d *decider) beginStep(i int, s *sluicev1.StageState, k int32) {
	ro := s.GetRollout()
	steps := d.spec(i).GetRollout().GetSteps()
	if d.held(i, s, k) {
		return
	}
	if int(k) >= len(steps) {
		d.promote(i, s)
		return
	}
	ro.Step = k
	ro.Inconclusive = 0
	if steps[k].GetApproval() && ro.GetPhase() != phaseWaiting {
		ro.Phase = phaseWaiting
		d.emit("stage.waiting_approval", s.GetName(), s.GetAttempt(), fmt.Sprintf("rollout step %d/%d (%d%%) waits: run `sluice approve %s %s`",
			k+1, len(steps), steps[k].GetWeight(), d.st.GetId(), s.GetName()))
		return
	}
	ro.Phase = phaseShifting
	ev := d.emit("rollout.step_started", s.GetName(), s.GetAttempt(), fmt.Sprintf("step %d/%d: shifting %d%% to the canary", k+1, len(steps), steps[k].GetWeight()))
	ev.Detail = map[string]string{"step": strconv.Itoa(int(k + 1)), "weight": strconv.Itoa(int(steps[k].GetWeight()))}
	d.queueAction(i, s)
}

func (d *decider) promote(i int, s *sluicev1.StageState) {
	ro := s.GetRollout()
	ro.Phase = phasePromoted
	s.Status = sluicev1.StageStatus_STAGE_STATUS_PASSED
	s.FinishedAt = timestamppb.New(d.now)
	s.Deadline = nil
	s.Message = fmt.Sprintf("promoted: canary at %d%% after %d steps", ro.GetWeight(), len(d.spec(i).GetRollout().GetSteps()))
	ev := d.emit("rollout.promoted", s.GetName(), s.GetAttempt(), s.GetMessage())
	ev.Detail = map[string]string{"weight": strconv.Itoa(int(ro.GetWeight()))}
	d.evidence = append(d.evidence, s.GetName())
	d.emit("stage.passed", s.GetName(), s.GetAttempt(), durationMsg(s))
	d.advance()
}

// rollback sends the canary's traffic back to stable. The action in flight, if any, is
// cancelled first.
func (d *decider) rollback(i int, s *sluicev1.StageState, reason string) {
	ro := s.GetRollout()
	if ro.GetPhase() == phaseRollingBack {
		return
	}
	if len(s.GetShards()) > 0 && s.GetShards()[0].GetPhase() != sluicev1.ResultPhase_RESULT_PHASE_FINAL && rolloutTask(d.spec(i), ro) != nil {
		d.cancels = append(d.cancels, &sluicev1.CancelSignal{RunId: d.st.GetId(), Stage: s.GetName(), Attempt: s.GetAttempt(), RolloutSeq: ro.GetSeq(), Reason: "rolling back: " + reason})
	}
	ro.Phase = phaseRollingBack
	ro.Reason = reason
	s.Message = "rolling back: " + reason
	d.queueAction(i, s)
}

// endRollout fails the stage after a rollout that did not promote.
func (d *decider) endRollout(i int, s *sluicev1.StageState, why string) {
	s.Status = sluicev1.StageStatus_STAGE_STATUS_FAILED
	s.FinishedAt = timestamppb.New(d.now)
	s.Deadline = nil
	s.Message = why
	d.emit("stage.failed", s.GetName(), s.GetAttempt(), why)
	d.advance()
}

// rolloutStarted records that a worker took the current action; its deadline starts now.
func (d *decider) rolloutStarted(i int, s *sluicev1.StageState) {
	if t := rolloutTask(d.spec(i), s.GetRollout()); t != nil {
		s.Deadline = timestamppb.New(d.now.Add(actionTimeout(d.spec(i), t) + d.p.DeadlineGrace))
	}
}

// rolloutResult decides the rollout's next action from the final result of its current one.
func (d *decider) rolloutResult(i int, s *sluicev1.StageState, r *sluicev1.Result) {
	ro := s.GetRollout()
	spec := d.spec(i)
	s.Deadline = nil
	passed := r.GetOutcome() == sluicev1.Outcome_OUTCOME_PASSED
	why := r.GetMessage()
	if why == "" {
		why = r.GetOutcome().Short()
	}
	switch ro.GetPhase() {
	case phaseDeploying:
		if !passed {
			d.endRollout(i, s, "deploying the canary failed: "+why)
			return
		}
		d.beginStep(i, s, 0)
	case phaseShifting:
		weight := spec.GetRollout().GetSteps()[ro.GetStep()].GetWeight()
		if !passed {
			d.rollback(i, s, fmt.Sprintf("shifting %d%% to the canary failed: %s", weight, why))
			return
		}
		ro.Weight = weight
		ev := d.emit("traffic.shifted", s.GetName(), s.GetAttempt(), fmt.Sprintf("canary at %d%%", weight))
		ev.Detail = map[string]string{"weight": strconv.Itoa(int(weight)), "step": strconv.Itoa(int(ro.GetStep() + 1))}
		d.afterShift(i, s)
	case phaseAnalysing:
		d.verdict(i, s, r)
	case phaseRollingBack:
		if !passed {
			ro.RollbackAttempts++
			if ro.GetRollbackAttempts() < maxRollbackAttempts {
				d.queueAction(i, s)
				return
			}
			d.endRollout(i, s, fmt.Sprintf("rolling back failed %d times (%s); the canary may still get %d%%: fix the router by hand", ro.GetRollbackAttempts(), why, ro.GetWeight()))
			return
		}
		from := ro.GetWeight()
		ro.Weight = 0
		ro.Phase = phaseRolledBack
		ev := d.emit("rollout.rolled_back", s.GetName(), s.GetAttempt(), fmt.Sprintf("canary %d%% -> 0%%: %s", from, ro.GetReason()))
		ev.Detail = map[string]string{"from_weight": strconv.Itoa(int(from)), "reason": ro.GetReason()}
		d.evidence = append(d.evidence, s.GetName())
		d.endRollout(i, s, "rolled back: "+ro.GetReason())
	}
}

// afterShift holds the new weight for the step's pause: analysed when the rollout has an
// analysis, else simply waited out.
func (d *decider) afterShift(i int, s *sluicev1.StageState) {
	ro := s.GetRollout()
	pause := d.spec(i).GetRollout().GetSteps()[ro.GetStep()].GetPause().AsDuration()
	switch {
	case pause <= 0:
		d.beginStep(i, s, ro.GetStep()+1)
	case d.spec(i).GetRollout().GetAnalysis() != nil:
		ro.Phase = phaseAnalysing
		d.queueAction(i, s)
	default:
		ro.Phase = phasePaused
		ro.PauseUntil = timestamppb.New(d.now.Add(pause))
	}
}

// verdict applies an analysis result: healthy goes on; inconclusive analyses the step again,
// then freezes; unhealthy (or an analysis that could not run) rolls back, or freezes under
// on_failure: freeze.
func (d *decider) verdict(i int, s *sluicev1.StageState, r *sluicev1.Result) {
	ro := s.GetRollout()
	v := r.GetVerdict()
	if v == nil {
		v = &sluicev1.Verdict{Outcome: sluicev1.VerdictOutcome_VERDICT_OUTCOME_UNHEALTHY, Message: "the analysis did not run: " + r.GetMessage()}
	}
	if r.GetOutcome() != sluicev1.Outcome_OUTCOME_PASSED && v.GetOutcome() != sluicev1.VerdictOutcome_VERDICT_OUTCOME_UNHEALTHY {
		v = &sluicev1.Verdict{Outcome: sluicev1.VerdictOutcome_VERDICT_OUTCOME_UNHEALTHY, Message: "the analysis failed: " + r.GetMessage(), Metrics: v.GetMetrics(), Intervals: v.GetIntervals()}
	}
	ro.Verdicts = append(ro.Verdicts, &sluicev1.VerdictRecord{Step: ro.GetStep(), Weight: ro.GetWeight(), Verdict: v, At: timestamppb.New(d.now)})
	outcome := strings.ToLower(strings.TrimPrefix(v.GetOutcome().String(), "VERDICT_OUTCOME_"))
	ev := d.emit("analysis.verdict", s.GetName(), s.GetAttempt(), fmt.Sprintf("%s at %d%%: %s", outcome, ro.GetWeight(), v.GetMessage()))
	ev.Detail = verdictDetail(v, ro.GetWeight())
	switch v.GetOutcome() {
	case sluicev1.VerdictOutcome_VERDICT_OUTCOME_HEALTHY:
		d.beginStep(i, s, ro.GetStep()+1)
		return
	case sluicev1.VerdictOutcome_VERDICT_OUTCOME_UNHEALTHY:
	default:
		ro.Inconclusive++
		if ro.GetInconclusive() < maxInconclusive {
			d.queueAction(i, s)
			return
		}
		d.freeze(i, s, fmt.Sprintf("inconclusive at %d%% after %d analyses (%s): not enough data to judge the canary", ro.GetWeight(), ro.GetInconclusive(), v.GetMessage()))
		return
	}
	reason := fmt.Sprintf("unhealthy at %d%%: %s", ro.GetWeight(), v.GetMessage())
	if d.spec(i).GetRollout().GetOnFailure() == "freeze" {
		d.freeze(i, s, reason)
		return
	}
	d.rollback(i, s, reason)
}

// freeze holds the canary's weight until a human approves (continue) or rolls back.
func (d *decider) freeze(i int, s *sluicev1.StageState, reason string) {
	ro := s.GetRollout()
	ro.Phase = phaseFrozen
	ro.Reason = reason
	s.Message = "frozen: " + reason
	d.emit("stage.waiting_approval", s.GetName(), s.GetAttempt(), fmt.Sprintf("frozen at %d%% (%s): `sluice approve %s %s` continues, `sluice rollback %s` rolls back",
		ro.GetWeight(), reason, d.st.GetId(), s.GetName(), d.st.GetId()))
}

func verdictDetail(v *sluicev1.Verdict, weight int32) map[string]string {
	out := map[string]string{"weight": strconv.Itoa(int(weight)), "outcome": strings.ToLower(strings.TrimPrefix(v.GetOutcome().String(), "VERDICT_OUTCOME_")), "intervals": strconv.Itoa(int(v.GetIntervals()))}
	for _, m := range v.GetMetrics() {
		out[m.GetName()+".canary"] = strconv.FormatFloat(m.GetCanary(), 'g', 6, 64)
		out[m.GetName()+".baseline"] = strconv.FormatFloat(m.GetBaseline(), 'g', 6, 64)
		out[m.GetName()+".limit"] = strconv.FormatFloat(m.GetLimit(), 'g', 6, 64)
	}
	return out
}

// rolloutActionLost handles an action that produced no result in time or exhausted its
// deliveries: like a failed action.
func (d *decider) rolloutActionLost(i int, s *sluicev1.StageState, why string) {
	d.rolloutResult(i, s, &sluicev1.Result{Outcome: sluicev1.Outcome_OUTCOME_ERROR, Message: why})
}

// rolloutTick ends a pause without analysis.
func (d *decider) rolloutTick(i int, s *sluicev1.StageState) bool {
	ro := s.GetRollout()
	if ro.GetPhase() != phasePaused || ro.GetPauseUntil() == nil || d.now.Before(ro.GetPauseUntil().AsTime()) {
		return false
	}
	ro.PauseUntil = nil
	d.beginStep(i, s, ro.GetStep()+1)
	return true
}

// rolloutApprove continues a rollout that waits for a step's approval or is frozen.
func (d *decider) rolloutApprove(i int, s *sluicev1.StageState, by string) bool {
	ro := s.GetRollout()
	switch ro.GetPhase() {
	case phaseWaiting:
		ev := d.emit("stage.approved", s.GetName(), s.GetAttempt(), fmt.Sprintf("rollout step %d approved by %s", ro.GetStep()+1, by))
		ev.Detail = map[string]string{"by": by, "step": strconv.Itoa(int(ro.GetStep() + 1))}
		d.beginStep(i, s, ro.GetStep())
		return true
	case phaseFrozen:
		ev := d.emit("stage.approved", s.GetName(), s.GetAttempt(), fmt.Sprintf("frozen rollout continued by %s", by))
		ev.Detail = map[string]string{"by": by}
		ro.Reason = ""
		d.beginStep(i, s, ro.GetStep()+1)
		return true
	}
	d.err = fmt.Errorf("%w: the rollout of %s is %s; nothing to approve", ErrConflict, s.GetName(), PhaseName(ro.GetPhase()))
	return false
}

// PhaseName is a rollout phase as messages and evidence name it: "analysing", "frozen".
func PhaseName(p rolloutPhase) string {
	return strings.ToLower(strings.TrimPrefix(p.String(), "ROLLOUT_PHASE_"))
}

// manualRollback rolls back every rollout of the run in progress.
func (d *decider) manualRollback(in RollbackIn) bool {
	by := in.By
	if by == "" {
		by = "unknown"
	}
	reason := "requested by " + by
	if in.Reason != "" {
		reason += ": " + in.Reason
	}
	changed := false
	for i, s := range d.st.GetStages() {
		if !rolloutActive(s) || s.GetRollout().GetPhase() == phaseRollingBack {
			continue
		}
		d.rollback(i, s, reason)
		changed = true
	}
	if !changed {
		d.err = fmt.Errorf("%w: run %s has no rollout in progress", ErrConflict, d.st.GetId())
	}
	return changed
}

// ActionName is a rollout action as messages name it: "set weight", "analyse".
func ActionName(a sluicev1.RolloutAction) string {
	return strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(a.String(), "ROLLOUT_ACTION_"), "_", " "))
}
