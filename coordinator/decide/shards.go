package decide

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	sluicev1 "github.com/sluice-ci/sluice/proto/sluice/v1"
)

// The test counts a shard's result reports (the test and e2e kinds do), which a sharded
// stage totals over its shards.
var testCounts = []string{"tests", "tests_failed", "tests_skipped"}

// Labels of a stage total: the attempt it counts, and totalScope under totalKey, which no
// result's own metric carries.
const (
	totalKey   = "scope"
	totalScope = "stage"
	attemptKey = "attempt"
)

func isTotal(m *sluicev1.Metric) bool { return m.GetLabels()[totalKey] == totalScope }

// addTotals adds r's test counts to the totals of s's current attempt, a metric per count
// that replaces an earlier attempt's. The totals are kept beside, not within, the bound on
// a stage's metrics: there are at most len(testCounts) of them.
func addTotals(s *sluicev1.StageState, r *sluicev1.Result) {
	if len(s.GetShards()) < 2 {
		return
	}
	attempt := strconv.Itoa(int(s.GetAttempt()))
	kept := s.Metrics[:0]
	for _, m := range s.GetMetrics() {
		if !isTotal(m) || m.GetLabels()[attemptKey] == attempt {
			kept = append(kept, m)
		}
	}
	s.Metrics = kept
	for _, m := range r.GetMetrics() {
		if isTotal(m) || !slices.Contains(testCounts, m.GetName()) {
			continue
		}
		if t := total(s, m.GetName()); t != nil {
			t.Value += m.GetValue()
			continue
		}
		s.Metrics = append(s.Metrics, &sluicev1.Metric{Name: m.GetName(), Value: m.GetValue(),
			Labels: map[string]string{totalKey: totalScope, attemptKey: attempt}})
	}
}

// total is the stage's total metric name of its current attempt, or nil.
func total(s *sluicev1.StageState, name string) *sluicev1.Metric {
	attempt := strconv.Itoa(int(s.GetAttempt()))
	for _, m := range s.GetMetrics() {
		if m.GetName() == name && isTotal(m) && m.GetLabels()[attemptKey] == attempt {
			return m
		}
	}
	return nil
}

// shardTotals says what the shards of the current attempt that have reported found
// together, "847 passed, 2 failed across 4 shards", "120 passed in 3 of 4 shards (1
// cancelled)"; "" when they reported no test counts.
func shardTotals(s *sluicev1.StageState) string {
	tests := total(s, "tests")
	if tests == nil {
		return ""
	}
	failed, skipped := total(s, "tests_failed").GetValue(), total(s, "tests_skipped").GetValue()
	var b strings.Builder
	fmt.Fprintf(&b, "%d passed", int64(tests.GetValue()-failed-skipped))
	if failed > 0 {
		fmt.Fprintf(&b, ", %d failed", int64(failed))
	}
	if skipped > 0 {
		fmt.Fprintf(&b, ", %d skipped", int64(skipped))
	}
	n, reported, cancelled := len(s.GetShards()), 0, 0
	for _, sh := range s.GetShards() {
		if sh.GetPhase() == sluicev1.ResultPhase_RESULT_PHASE_FINAL {
			reported++
		}
		if sh.GetOutcome() == sluicev1.Outcome_OUTCOME_CANCELLED {
			cancelled++
		}
	}
	if reported == n {
		fmt.Fprintf(&b, " across %d shards", n)
	} else {
		fmt.Fprintf(&b, " in %d of %d shards", reported, n)
	}
	if cancelled > 0 {
		fmt.Fprintf(&b, " (%d cancelled)", cancelled)
	}
	return b.String()
}

// withTotals puts the shards' totals, as they are now, in front of msg, in place of the
// totals prev that msg may already start with.
func withTotals(s *sluicev1.StageState, prev, msg string) string {
	if prev != "" {
		msg = strings.TrimPrefix(msg, prev+"; ")
	}
	if t := shardTotals(s); t != "" {
		msg = t + "; " + msg
	}
	return sluicev1.Clip(msg, maxMessageBytes)
}

// lateShard records the final result of a shard of an attempt that ended before it did
// (another shard failed, the deadline passed, the run was cancelled): its outcome, its
// reports (what the shard had when it was stopped) and the stage's totals. The stage's
// outcome stays as it was.
func (d *decider) lateShard(r *sluicev1.Result) bool {
	i, s := d.stage(r.GetStage())
	if s == nil || s.GetRollout() != nil || r.GetPhase() != sluicev1.ResultPhase_RESULT_PHASE_FINAL || r.GetAttempt() != s.GetAttempt() {
		return false
	}
	switch s.GetStatus() {
	case sluicev1.StageStatus_STAGE_STATUS_FAILED, sluicev1.StageStatus_STAGE_STATUS_CANCELLED, sluicev1.StageStatus_STAGE_STATUS_RETRY_WAIT:
	default:
		return false
	}
	if r.GetShardIndex() < 0 || int(r.GetShardIndex()) >= len(s.GetShards()) {
		return false
	}
	sh := s.GetShards()[r.GetShardIndex()]
	if sh.GetPhase() == sluicev1.ResultPhase_RESULT_PHASE_FINAL || sh.GetHeld() {
		return false
	}
	d.taskFinished(i, s, sh, r)
	prev := shardTotals(s)
	d.finishShard(s, sh, r)
	s.Message = withTotals(s, prev, s.GetMessage())
	return true
}

// finishShard records r, the final result of shard sh, and folds its reports into s.
func (d *decider) finishShard(s *sluicev1.StageState, sh *sluicev1.ShardState, r *sluicev1.Result) {
	sh.Phase = sluicev1.ResultPhase_RESULT_PHASE_FINAL
	sh.Outcome = r.GetOutcome()
	sh.Worker = sluicev1.Clip(r.GetWorker(), maxNameBytes)
	sh.Delivery = max(sh.GetDelivery(), r.GetDelivery())
	sh.Message = sluicev1.Clip(r.GetMessage(), maxMessageBytes)
	sh.ExitCode = r.GetExitCode()
	if sh.StartedAt == nil {
		sh.StartedAt = timestampOr(r.GetStartedAt(), d.now)
	}
	sh.FinishedAt = timestampOr(r.GetFinishedAt(), d.now)
	d.fold(s, r)
	addTotals(s, r)
}
