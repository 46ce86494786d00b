package decide

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	sluicev1 "github.com/sluice-ci/sluice/proto/sluice/v1"
)

func shardsOf(d Decision) []int32 {
	var out []int32
	for _, t := range d.Tasks {
		out = append(out, t.GetShardIndex())
	}
	slices.Sort(out)
	return out
}

func shardPassed(stage string, shard int32) ResultIn {
	r := passed(stage, 1)
	r.Result.ShardIndex = shard
	return r
}

// A run has at most MaxRunTasks tasks in flight: the rest of a big attempt waits, and each
// task that ends lets the next one out, in stage order.
func TestDecideHoldsShardsBeyondTheRunsInFlightBound(t *testing.T) {
	big := stage("big")
	big.Shards = 10
	h := newHarness(t, "main", big, stage("small"))
	h.p.MaxRunTasks = 4
	d := h.do(Start{})
	if got := len(d.Tasks); got != 4 {
		t.Fatalf("%d tasks dispatched at start, want the bound of 4", got)
	}
	if got := shardsOf(d); !slices.Equal(got, []int32{0, 0, 1, 2}) {
		t.Fatalf("first tasks are shards %v, want big's 0..2 and small's 0 (stage order)", got)
	}
	held := 0
	for _, sh := range h.st.GetStages()[0].GetShards() {
		if sh.GetHeld() {
			held++
		}
	}
	if held != 7 {
		t.Fatalf("%d shards held, want 7", held)
	}
	// Held shards have no tasks to republish.
	if got := len(TasksFor(h.st, 0)); got != 3 {
		t.Fatalf("TasksFor returns %d tasks, want only the 3 dispatched", got)
	}
	d = h.do(passed("small", 1))
	if got := shardsOf(d); !slices.Equal(got, []int32{3}) {
		t.Fatalf("small's end released %v, want shard 3", got)
	}
	for k := range int32(10) {
		d = h.do(shardPassed("big", k))
		if want := k + 4; want < 10 && !slices.Equal(shardsOf(d), []int32{want}) {
			t.Fatalf("shard %d's end released %v, want [%d]", k, shardsOf(d), want)
		}
	}
	if h.st.GetStatus() != sluicev1.RunStatus_RUN_STATUS_PASSED {
		t.Fatalf("run %s", h.st.GetStatus().Short())
	}
}

func TestDecideBoundsWhatResultsAdd(t *testing.T) {
	h := newHarness(t, "main", stage("lint"))
	h.do(Start{})
	r := result("lint", 1, sluicev1.ResultPhase_RESULT_PHASE_FINAL, sluicev1.Outcome_OUTCOME_FAILED)
	r.Result.Message = strings.Repeat("long ", 10_000)
	for i := range 300 {
		r.Result.Findings = append(r.Result.Findings, &sluicev1.Finding{Rule: "R1", File: fmt.Sprintf("f%d.go", i), Message: strings.Repeat("x", 5000)})
	}
	for range 300 {
		r.Result.Metrics = append(r.Result.Metrics, &sluicev1.Metric{Name: "m", Labels: map[string]string{"command": strings.Repeat("c", 5000)}})
	}
	h.do(r)
	s := h.st.GetStages()[0]
	if len(s.GetFindings()) != maxStageFindings || s.GetFindingsOmitted() != 300-maxStageFindings {
		t.Fatalf("%d findings kept, %d omitted", len(s.GetFindings()), s.GetFindingsOmitted())
	}
	if len(s.GetMessage()) > maxMessageBytes || len(s.GetFindings()[0].GetMessage()) > maxFindingBytes || len(s.GetMetrics()) != maxStageMetrics {
		t.Fatalf("message %d bytes, finding message %d, %d metrics", len(s.GetMessage()), len(s.GetFindings()[0].GetMessage()), len(s.GetMetrics()))
	}
	if r.Result.GetFindings()[0].GetMessage() != strings.Repeat("x", 5000) {
		t.Fatal("Decide changed the result it was given")
	}
}

// A state that outgrows what the server stores is compacted (findings dropped, messages
// shortened) and, when that is not enough, fails the run alone, with the sizes.
func TestDecideKeepsTheStateWithinTheServersLimit(t *testing.T) {
	tests := []struct {
		name  string
		room  int
		want  sluicev1.RunStatus
		cause string
	}{
		{"compacting is enough", 20_000, sluicev1.RunStatus_RUN_STATUS_PASSED, ""},
		{"compacting is not enough", 2_000, sluicev1.RunStatus_RUN_STATUS_FAILED, "above the"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stages []*sluicev1.StageSpec
			for i := range 40 {
				stages = append(stages, stage(fmt.Sprintf("s%d", i)))
			}
			h := newHarness(t, "main", stages...)
			h.do(Start{})
			h.p.MaxStateBytes = proto.Size(h.st) + tt.room
			for i := range 40 {
				if h.st.GetStatus().Terminal() {
					break
				}
				r := result(fmt.Sprintf("s%d", i), 1, sluicev1.ResultPhase_RESULT_PHASE_FINAL, sluicev1.Outcome_OUTCOME_PASSED)
				r.Result.Message = strings.Repeat("m", 900)
				r.Result.Findings = []*sluicev1.Finding{{Rule: "R", Message: strings.Repeat("f", 500)}}
				h.do(r)
				if size := proto.Size(h.st); size > h.p.MaxStateBytes {
					t.Fatalf("after stage %d the state is %d bytes, above the limit of %d", i, size, h.p.MaxStateBytes)
				}
			}
			if h.st.GetStatus() != tt.want || !strings.Contains(h.st.GetMessage(), tt.cause) {
				t.Fatalf("run %s: %q, want %s", h.st.GetStatus().Short(), h.st.GetMessage(), tt.want.Short())
			}
			var omitted int32
			for _, s := range h.st.GetStages() {
				omitted += s.GetFindingsOmitted()
			}
			if omitted == 0 {
				t.Fatal("no findings were dropped to make room")
			}
		})
	}
}

// The result that ends a run can be the one that outgrows the bound: the run fails with
// the sizes instead of passing in a state the server would refuse.
func TestDecideTheLastResultOutgrowsTheLimit(t *testing.T) {
	var stages []*sluicev1.StageSpec
	for i := range 10 {
		stages = append(stages, stage(fmt.Sprintf("s%d", i)))
	}
	h := newHarness(t, "main", stages...)
	h.do(Start{})
	for i := range 9 {
		r := passed(fmt.Sprintf("s%d", i), 1)
		r.Result.Message = strings.Repeat("m", 128)
		h.do(r)
	}
	// Room for the last stage's outcome, not for its message even shortened.
	h.p.MaxStateBytes = proto.Size(h.st) + 200
	r := passed("s9", 1)
	r.Result.Message = strings.Repeat("m", 900)
	h.do(r)
	if h.st.GetStatus() != sluicev1.RunStatus_RUN_STATUS_FAILED || !strings.Contains(h.st.GetMessage(), "above the") {
		t.Fatalf("run %s: %q, want failed with the sizes", h.st.GetStatus().Short(), h.st.GetMessage())
	}
	if size := proto.Size(h.st); size > h.p.MaxStateBytes {
		t.Fatalf("the state is %d bytes, above the limit of %d", size, h.p.MaxStateBytes)
	}
	var types []string
	for _, e := range h.st.GetOutbox() {
		types = append(types, e.GetType())
	}
	if slices.Contains(types, "run.passed") || !slices.Contains(types, "run.failed") {
		t.Fatalf("events %v, want run.failed and no run.passed", types)
	}
}
