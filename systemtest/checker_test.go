package systemtest

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	sluicev1 "github.com/sluice-ci/sluice/proto/sluice/v1"
)

// history is what a fleet left behind, read back after the faults: the runs the test
// submitted, every event on the events stream, the stored state of each run (nil: the
// store does not know it), and every FINAL result on the results stream.
type history struct {
	submitted []string
	events    []*sluicev1.Event
	states    map[string]*sluicev1.RunState
	finals    []*sluicev1.Result
}

// verdict is what the checker found. A fleet is sound when every submitted run is stored
// and ended (in its state and with a terminal run event), and no run or stage attempt has
// two different final outcomes, in the events or between the events and the state.
type verdict struct {
	submitted, ended, lost, unended int
	byStatus                        map[string]int
	stageOutcomes                   int // distinct (run, stage, attempt) outcomes
	conflicts                       []string
	finalResults, duplicateFinals   int // FINAL results published; those beyond one per lease
	// unreported counts stage attempts stored passed or failed with no FINAL result on the
	// results stream: a result the coordinator decided on that the stream no longer holds.
	// It is reported, not judged: the three promises are about runs and outcomes.
	unreported int
}

func (v verdict) sound() bool {
	return v.lost == 0 && v.unended == 0 && len(v.conflicts) == 0 && v.ended == v.submitted
}

func (v verdict) String() string {
	statuses := make([]string, 0, len(v.byStatus))
	for s, n := range v.byStatus {
		statuses = append(statuses, fmt.Sprintf("%s %d", s, n))
	}
	slices.Sort(statuses)
	return fmt.Sprintf("checker: %d runs submitted, %d ended (%s), %d lost, %d not ended; %d stage outcomes, %d conflicting; %d final results published, %d of them redelivered duplicates; %d outcomes without a stored final result",
		v.submitted, v.ended, strings.Join(statuses, ", "), v.lost, v.unended, v.stageOutcomes, len(v.conflicts), v.finalResults, v.duplicateFinals, v.unreported)
}

var stageEnds = map[string]string{
	"stage.passed": "passed", "stage.failed": "failed", "stage.skipped": "skipped", "stage.cancelled": "cancelled",
}

var runEnds = map[string]string{
	"run.passed": "passed", "run.failed": "failed", "run.cancelled": "cancelled",
}

// check reads a history. Events are delivered at least once, so the same event (by id) seen
// twice counts once; two events that end one stage attempt differently are a conflict.
func check(h history) verdict {
	v := verdict{submitted: len(h.submitted), byStatus: map[string]int{}}
	type attempt struct {
		run, stage string
		n          int32
	}
	seen := map[string]bool{}
	stageEnd := map[attempt]map[string]bool{}
	runEnd := map[string]map[string]bool{}
	for _, e := range h.events {
		if seen[e.GetId()] {
			continue
		}
		seen[e.GetId()] = true
		if out, ok := stageEnds[e.GetType()]; ok {
			k := attempt{e.GetRunId(), e.GetStage(), e.GetAttempt()}
			if stageEnd[k] == nil {
				stageEnd[k] = map[string]bool{}
			}
			stageEnd[k][out] = true
		}
		if out, ok := runEnds[e.GetType()]; ok {
			if runEnd[e.GetRunId()] == nil {
				runEnd[e.GetRunId()] = map[string]bool{}
			}
			runEnd[e.GetRunId()][out] = true
		}
	}
	outcomes := func(m map[string]bool) string {
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		return strings.Join(keys, " and ")
	}
	for k, outs := range stageEnd {
		v.stageOutcomes++
		if len(outs) > 1 {
			v.conflicts = append(v.conflicts, fmt.Sprintf("run %s stage %s attempt %d ended %s", k.run, k.stage, k.n, outcomes(outs)))
		}
	}
	for run, outs := range runEnd {
		if len(outs) > 1 {
			v.conflicts = append(v.conflicts, fmt.Sprintf("run %s ended %s", run, outcomes(outs)))
		}
	}
	for _, id := range h.submitted {
		st := h.states[id]
		if st == nil {
			v.lost++
			continue
		}
		if !st.GetStatus().Terminal() || len(runEnd[id]) == 0 {
			v.unended++
			continue
		}
		v.ended++
		v.byStatus[st.GetStatus().Short()]++
		if !runEnd[id][st.GetStatus().Short()] {
			v.conflicts = append(v.conflicts, fmt.Sprintf("run %s is stored %s but its events say %s", id, st.GetStatus().Short(), outcomes(runEnd[id])))
		}
		for _, s := range st.GetStages() {
			if !s.GetStatus().Terminal() || s.GetStatus() == sluicev1.StageStatus_STAGE_STATUS_SKIPPED {
				continue
			}
			outs := stageEnd[attempt{id, s.GetName(), s.GetAttempt()}]
			if !outs[s.GetStatus().Short()] {
				v.conflicts = append(v.conflicts, fmt.Sprintf("run %s stage %s is stored %s (attempt %d) but its events say %q", id, s.GetName(), s.GetStatus().Short(), s.GetAttempt(), outcomes(outs)))
			}
		}
	}
	leases := map[string]int{}
	reported := map[attempt]bool{}
	for _, r := range h.finals {
		v.finalResults++
		leases[fmt.Sprintf("%s/%s/%d/%d/%d", r.GetRunId(), r.GetStage(), r.GetAttempt(), r.GetShardIndex(), r.GetRolloutSeq())]++
		reported[attempt{r.GetRunId(), r.GetStage(), r.GetAttempt()}] = true
	}
	for _, n := range leases {
		v.duplicateFinals += n - 1
	}
	for id, st := range h.states {
		for _, s := range st.GetStages() {
			switch s.GetStatus() {
			case sluicev1.StageStatus_STAGE_STATUS_PASSED, sluicev1.StageStatus_STAGE_STATUS_FAILED:
				if !reported[attempt{id, s.GetName(), s.GetAttempt()}] {
					v.unreported++
				}
			}
		}
	}
	slices.Sort(v.conflicts)
	return v
}

// The checker must catch what it is there to catch: a lost run, a run that never ended, a
// stage attempt ended twice differently, and a stored state its events contradict.
func TestCheckerFindsLostRunsAndDoubledOutcomes(t *testing.T) {
	ev := func(id, typ, run, stage string, attempt int32) *sluicev1.Event {
		return &sluicev1.Event{Id: id, Type: typ, RunId: run, Stage: stage, Attempt: attempt}
	}
	state := func(id string, run sluicev1.RunStatus, stage sluicev1.StageStatus) *sluicev1.RunState {
		return &sluicev1.RunState{Id: id, Status: run, Stages: []*sluicev1.StageState{{Name: "s", Status: stage, Attempt: 1}}}
	}
	passed := func(id string) []*sluicev1.Event {
		return []*sluicev1.Event{ev(id+"-1", "stage.passed", id, "s", 1), ev(id+"-2", "run.passed", id, "", 0)}
	}
	good := history{
		submitted: []string{"r1", "r2"},
		events:    append(append(passed("r1"), passed("r2")...), passed("r1")...), // redelivered events count once
		states: map[string]*sluicev1.RunState{
			"r1": state("r1", sluicev1.RunStatus_RUN_STATUS_PASSED, sluicev1.StageStatus_STAGE_STATUS_PASSED),
			"r2": state("r2", sluicev1.RunStatus_RUN_STATUS_PASSED, sluicev1.StageStatus_STAGE_STATUS_PASSED),
		},
		finals: []*sluicev1.Result{{RunId: "r1", Stage: "s", Attempt: 1}, {RunId: "r1", Stage: "s", Attempt: 1}, {RunId: "r2", Stage: "s", Attempt: 1}},
	}
	if v := check(good); !v.sound() || v.ended != 2 || v.duplicateFinals != 1 || v.stageOutcomes != 2 || v.unreported != 0 {
		t.Fatalf("a sound history: %s %v", v, v.conflicts)
	}
	noResult := good
	noResult.finals = good.finals[:2]
	if v := check(noResult); v.unreported != 1 || !strings.Contains(v.String(), "1 outcomes without a stored final result") {
		t.Fatalf("r2's stage passed with no result on the stream: %s", v)
	}

	tests := []struct {
		name   string
		change func(h *history)
		want   string
	}{
		{"lost run", func(h *history) { delete(h.states, "r2") }, "1 lost"},
		{"run never ended", func(h *history) {
			h.states["r2"] = state("r2", sluicev1.RunStatus_RUN_STATUS_RUNNING, sluicev1.StageStatus_STAGE_STATUS_RUNNING)
		}, "1 not ended"},
		{"no terminal run event", func(h *history) { h.events = passed("r1") }, "1 not ended"},
		{"stage ended twice differently", func(h *history) {
			h.events = append(h.events, ev("x", "stage.failed", "r1", "s", 1))
		}, "run r1 stage s attempt 1 ended failed and passed"},
		{"run ended twice differently", func(h *history) {
			h.events = append(h.events, ev("x", "run.failed", "r2", "", 0))
		}, "run r2 ended failed and passed"},
		{"state contradicts events", func(h *history) {
			h.states["r1"] = state("r1", sluicev1.RunStatus_RUN_STATUS_PASSED, sluicev1.StageStatus_STAGE_STATUS_FAILED)
		}, "run r1 stage s is stored failed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := good
			h.states = map[string]*sluicev1.RunState{"r1": good.states["r1"], "r2": good.states["r2"]}
			h.events = slices.Clone(good.events)
			tt.change(&h)
			v := check(h)
			if v.sound() {
				t.Fatalf("the checker passed a broken history: %s", v)
			}
			if text := v.String() + "\n" + strings.Join(v.conflicts, "\n"); !strings.Contains(text, tt.want) {
				t.Fatalf("the checker's verdict lacks %q:\n%s", tt.want, text)
			}
		})
	}
}
