package decide

import (
	"errors"
	"testing"

	"google.golang.org/protobuf/proto"

	sluicev1 "github.com/sluice-ci/sluice/proto/sluice/v1"
)

// inFlight is a run mid-way: a sharded stage running, a rollout shifting traffic.
func inFlight(t testing.TB) *sluicev1.RunState {
	sharded := stage("test")
	sharded.Shards = 3
	h := newHarness(t, "main", sharded, rolloutStage())
	h.do(Start{})
	h.do(started("test", 1))
	ro := newRolloutOn(h)
	ro.pass()
	return proto.Clone(h.st).(*sluicev1.RunState)
}

func newRolloutOn(h *harness) *rolloutHarness {
	r := &rolloutHarness{harness: h}
	for _, t := range h.h.Submitted[0].Tasks {
		if t.GetStage() == "production" {
			r.task = t
		}
	}
	return r
}

// everyInput is one input of each kind, aimed at the stages of inFlight.
func everyInput() []Input {
	return []Input{
		Start{}, Tick{}, CancelIn{Reason: "x"}, ApproveIn{Stage: "production"}, RollbackIn{},
		LockGranted{Stage: "test"}, MaxDelivered{Stage: "test", Attempt: 1, Shard: 2, Deliveries: 5},
		passed("test", 1), passed("production", 1), started("production", 1),
	}
}

// A state read back from the bus may contradict its own spec (a bug of an older version, a
// hand edit, a forged write). Deciding on it must fail with ErrCorrupt, never index out of
// range and take the coordinator's lane down with it.
func TestDecideRefusesAStateThatContradictsItsSpec(t *testing.T) {
	tests := []struct {
		name    string
		corrupt func(st *sluicev1.RunState)
	}{
		{"a stage more than the spec", func(st *sluicev1.RunState) {
			st.Stages = append(st.Stages, &sluicev1.StageState{Name: "ghost", Status: sluicev1.StageStatus_STAGE_STATUS_RUNNING})
		}},
		{"a stage less than the spec", func(st *sluicev1.RunState) { st.Stages = st.Stages[:1] }},
		{"no spec", func(st *sluicev1.RunState) { st.Spec = nil }},
		{"stages out of order", func(st *sluicev1.RunState) { st.Stages[0], st.Stages[1] = st.Stages[1], st.Stages[0] }},
		{"more shards than the spec", func(st *sluicev1.RunState) {
			st.Stages[0].Shards = append(st.Stages[0].Shards, &sluicev1.ShardState{Index: 3})
		}},
		{"a shard off its index", func(st *sluicev1.RunState) { st.Stages[0].Shards[1].Index = 7 }},
		{"an empty shard", func(st *sluicev1.RunState) { st.Stages[0].Shards[1] = nil }},
		{"a rollout step past the last", func(st *sluicev1.RunState) { st.Stages[1].Rollout.Step = 3 }},
		{"a negative rollout step", func(st *sluicev1.RunState) { st.Stages[1].Rollout.Step = -1 }},
		{"a rollout the spec lacks", func(st *sluicev1.RunState) {
			st.Stages[0].Rollout = &sluicev1.RolloutState{Phase: phaseShifting}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := inFlight(t)
			if err := Validate(st); err != nil {
				t.Fatalf("the state before corruption: %v", err)
			}
			tt.corrupt(st)
			if err := Validate(st); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Validate: %v, want ErrCorrupt", err)
			}
			for _, in := range everyInput() {
				if _, err := DefaultPolicy().Decide(st, in, t0); !errors.Is(err, ErrCorrupt) {
					t.Errorf("%T: %v, want ErrCorrupt", in, err)
				}
			}
		})
	}
}

// FuzzDecideNeverPanics decides every kind of input on states decoded from arbitrary bytes
// (seeded with real states): whatever a stored value holds, Decide returns, and what passes
// Validate is safe for the planner's reads too.
func FuzzDecideNeverPanics(f *testing.F) {
	for _, st := range []*sluicev1.RunState{inFlight(f), NewRun("r1", &sluicev1.PipelineSpec{Stages: []*sluicev1.StageSpec{stage("a")}}, &sluicev1.SubmitRunRequest{}, "", t0)} {
		data, err := proto.Marshal(st)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var st sluicev1.RunState
		if proto.Unmarshal(data, &st) != nil {
			return
		}
		for _, in := range everyInput() {
			_, _ = DefaultPolicy().Decide(&st, in, t0)
		}
		if Validate(&st) != nil {
			return
		}
		for i := range st.GetStages() {
			_ = TasksFor(&st, i)
		}
		_ = NextWake(&st)
		_, _, _ = NextHolder([]*sluicev1.RunState{&st}, "g")
	})
}
