package decide

import (
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	sluicev1 "github.com/sluice-ci/sluice/proto/sluice/v1"
)

// waiting is a run whose one stage waits for group since queued.
func waiting(id, group string, queued time.Time, status sluicev1.StageStatus) *sluicev1.RunState {
	s := stage("deploy")
	s.Concurrency = &sluicev1.Concurrency{Group: group}
	st := NewRun(id, &sluicev1.PipelineSpec{Stages: []*sluicev1.StageSpec{s}}, &sluicev1.SubmitRunRequest{}, "", t0)
	st.Stages[0].Status = status
	st.Stages[0].QueuedAt = timestamppb.New(queued)
	return st
}

func TestNextHolderIsTheLongestWaiter(t *testing.T) {
	wait := sluicev1.StageStatus_STAGE_STATUS_WAITING_LOCK
	runs := []*sluicev1.RunState{
		waiting("r3", "prod", t0.Add(2*time.Second), wait),
		waiting("r2", "prod", t0.Add(time.Second), wait),
		waiting("r0", "prod", t0, sluicev1.StageStatus_STAGE_STATUS_RUNNING),
		waiting("r1", "staging", t0, wait),
		waiting("r4", "prod", t0.Add(time.Second), wait),
	}
	if run, stage, ok := NextHolder(runs, "prod"); !ok || run != "r2" || stage != "deploy" {
		t.Fatalf("prod goes to %s/%s (%v), want r2/deploy: the longest waiter, ties by run id", run, stage, ok)
	}
	if _, _, ok := NextHolder(runs, "qa"); ok {
		t.Fatal("a group nobody waits for has a next holder")
	}
	groups := WaitedGroups(runs)
	slices.Sort(groups)
	if !slices.Equal(groups, []string{"prod", "staging"}) {
		t.Fatalf("waited groups %v", groups)
	}
}

func TestHolderOf(t *testing.T) {
	held := func(status sluicev1.StageStatus, lockHeld bool) *sluicev1.RunState {
		st := waiting("r1", "prod", t0, status)
		st.Stages[0].LockHeld = lockHeld
		return st
	}
	tests := []struct {
		name  string
		st    *sluicev1.RunState
		stage string
		want  Holding
	}{
		{"running with the lock", held(sluicev1.StageStatus_STAGE_STATUS_RUNNING, true), "deploy", HolderActive},
		{"finished", held(sluicev1.StageStatus_STAGE_STATUS_PASSED, true), "deploy", HolderGone},
		{"running without the lock", held(sluicev1.StageStatus_STAGE_STATUS_RUNNING, false), "deploy", HolderGone},
		{"still waiting: the grant was lost", held(sluicev1.StageStatus_STAGE_STATUS_WAITING_LOCK, false), "deploy", HolderUngranted},
		{"no such stage", held(sluicev1.StageStatus_STAGE_STATUS_RUNNING, true), "other", HolderGone},
		{"no such run", nil, "deploy", HolderGone},
	}
	for _, tt := range tests {
		if got := HolderOf(tt.st, tt.stage); got != tt.want {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
		}
	}
}
