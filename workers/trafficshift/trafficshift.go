// Package trafficshift is the traffic-shift kind: it carries out the one rollout action the
// coordinator hands out (deploy the canary, shift W% to it, analyse it, roll back) with the
// deploy engine, built from the task's rollout block (rolloutOf), and reports the outcome and
// the verdict with its numbers. The rollout's state lives in the coordinator, so any worker
// can take the next action.
package trafficshift

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/sluice-ci/sluice/deploy"
	sluicev1 "github.com/sluice-ci/sluice/proto/sluice/v1"
	"github.com/sluice-ci/sluice/workers"
)

// Handler runs traffic-shift tasks. A stage without a rollout block runs its `run:` steps.
type Handler struct {
	// Options reach routers, providers and health URLs from this machine.
	Options deploy.Options
}

// Handle carries out t's rollout action.
func (h Handler) Handle(ctx context.Context, t *workers.Task) *sluicev1.Result {
	action := t.Task.GetRollout()
	spec := t.Task.GetSpec()
	if action == nil {
		if spec.GetRollout() != nil {
			return errorResult("a rollout stage's task carries no rollout action (is the coordinator older than this worker?)")
		}
		return t.RunSteps(ctx, spec.GetRun())
	}
	if spec.GetRollout() == nil {
		return errorResult("a rollout action for a stage without a rollout block")
	}
	opts := h.Options
	opts.Logger = t.Logger
	e, err := deploy.New(rolloutOf(spec.GetRollout()), opts)
	if err != nil {
		return errorResult(err.Error())
	}
	switch action.GetAction() {
	case sluicev1.RolloutAction_ROLLOUT_ACTION_DEPLOY:
		return deployCanary(ctx, t, e)
	case sluicev1.RolloutAction_ROLLOUT_ACTION_SET_WEIGHT:
		return setWeight(ctx, t, e, int(action.GetWeight()))
	case sluicev1.RolloutAction_ROLLOUT_ACTION_ANALYSE:
		return analyse(ctx, t, e, action)
	case sluicev1.RolloutAction_ROLLOUT_ACTION_ROLLBACK:
		return setWeight(ctx, t, e, 0)
	}
	return errorResult(fmt.Sprintf("unknown rollout action %v", action.GetAction()))
}

func errorResult(msg string) *sluicev1.Result {
	return &sluicev1.Result{Outcome: sluicev1.Outcome_OUTCOME_ERROR, Message: msg}
}

func deployCanary(ctx context.Context, t *workers.Task, e *deploy.Engine) *sluicev1.Result {
	if run := t.Task.GetSpec().GetRollout().GetDeploy().GetRun(); len(run) > 0 {
		if res := t.RunSteps(ctx, run); res.GetOutcome() != sluicev1.Outcome_OUTCOME_PASSED {
			return res
		}
	}
	if e.HealthURL == "" {
		return &sluicev1.Result{Outcome: sluicev1.Outcome_OUTCOME_PASSED, Message: "canary deployed (no health check)"}
	}
	fmt.Fprintf(t.Log, "waiting up to %s for %s\n", e.HealthTimeout, e.HealthURL)
	if err := e.WaitHealthy(ctx); err != nil {
		return &sluicev1.Result{Outcome: sluicev1.Outcome_OUTCOME_FAILED, Message: err.Error()}
	}
	return &sluicev1.Result{Outcome: sluicev1.Outcome_OUTCOME_PASSED, Message: "canary deployed and healthy at " + e.HealthURL}
}

func setWeight(ctx context.Context, t *workers.Task, e *deploy.Engine, w int) *sluicev1.Result {
	if err := e.SetWeight(ctx, w); err != nil {
		return &sluicev1.Result{Outcome: sluicev1.Outcome_OUTCOME_FAILED, Message: err.Error()}
	}
	fmt.Fprintf(t.Log, "canary weight %d%%\n", w)
	return &sluicev1.Result{
		Outcome: sluicev1.Outcome_OUTCOME_PASSED,
		Message: fmt.Sprintf("canary at %d%%", w),
		Metrics: []*sluicev1.Metric{{Name: "canary_weight", Value: float64(w), Unit: "%"}},
	}
}

// analyse judges the canary one interval at a time for the step's pause (at least one
// interval) and reports as soon as failure_limit consecutive intervals are unhealthy; an
// unhealthy interval below the limit extends the analysis until it is confirmed or cleared.
func analyse(ctx context.Context, t *workers.Task, e *deploy.Engine, action *sluicev1.RolloutTask) *sluicev1.Result {
	until := time.Now().Add(action.GetDuration().AsDuration())
	limit := max(int(t.Task.GetSpec().GetRollout().GetAnalysis().GetFailureLimit()), 1)
	var last deploy.Verdict
	healthy, intervals, failing := 0, 0, 0
	for intervals == 0 || failing > 0 || time.Now().Add(e.Interval/2).Before(until) {
		v, err := e.Analyse(ctx)
		if err != nil {
			return &sluicev1.Result{Outcome: sluicev1.Outcome_OUTCOME_ERROR, Message: err.Error(),
				Verdict: &sluicev1.Verdict{Outcome: sluicev1.VerdictOutcome_VERDICT_OUTCOME_UNHEALTHY, Message: "the analysis could not measure: " + err.Error(), Intervals: int32(intervals)}}
		}
		intervals++
		last = v
		fmt.Fprintf(t.Log, "interval %d at %d%%: %s (%s)\n", intervals, action.GetWeight(), v.Outcome, v.Reason)
		if v.Outcome != deploy.Unhealthy {
			failing = 0
		} else if failing++; failing >= limit {
			return &sluicev1.Result{Outcome: sluicev1.Outcome_OUTCOME_FAILED, Message: v.Reason, Verdict: toProto(v, intervals)}
		}
		if v.Outcome == deploy.Healthy {
			healthy++
		}
	}
	verdict := toProto(last, intervals)
	if healthy > 0 {
		verdict.Outcome = sluicev1.VerdictOutcome_VERDICT_OUTCOME_HEALTHY
		verdict.Message = fmt.Sprintf("%d of %d intervals healthy, none unhealthy; last: %s", healthy, intervals, last.Reason)
	}
	return &sluicev1.Result{Outcome: sluicev1.Outcome_OUTCOME_PASSED, Message: verdict.GetMessage(), Verdict: verdict}
}

// toProto renders an engine verdict for the wire, every number kept.
func toProto(v deploy.Verdict, intervals int) *sluicev1.Verdict {
	out := &sluicev1.Verdict{Message: v.Reason, Intervals: int32(intervals), Outcome: outcomeOf(v.Outcome)}
	for _, c := range v.Checks {
		out.Metrics = append(out.Metrics, &sluicev1.MetricVerdict{
			Name: c.Metric, Outcome: outcomeOf(c.Outcome), Canary: c.Canary, Baseline: c.Baseline, Limit: c.Limit,
			Rule: c.Rule, CanarySamples: int64(c.CanarySamples), BaselineSamples: int64(c.BaselineSamples),
			PValue: c.P, EffectSize: c.CLES,
		})
	}
	return out
}

func outcomeOf(o deploy.Outcome) sluicev1.VerdictOutcome {
	switch strings.ToLower(string(o)) {
	case string(deploy.Healthy):
		return sluicev1.VerdictOutcome_VERDICT_OUTCOME_HEALTHY
	case string(deploy.Unhealthy):
		return sluicev1.VerdictOutcome_VERDICT_OUTCOME_UNHEALTHY
	}
	return sluicev1.VerdictOutcome_VERDICT_OUTCOME_INCONCLUSIVE
}
