package decide

import (
	"fmt"

	sluicev1 "github.com/sluice-ci/sluice/proto/sluice/v1"
)

// Validate checks that a run's state agrees with its own spec wherever the decisions index
// one by the other: a stage per spec stage with the same name, no more shards than the spec
// asks for, each at its own index, and a rollout step within the rollout's steps. A state
// read from the bus is data from outside the process; one that fails here is refused
// (ErrCorrupt) rather than decided on, so it fails alone instead of stopping its lane.
func Validate(st *sluicev1.RunState) error {
	if st == nil {
		return fmt.Errorf("%w: no state", ErrCorrupt)
	}
	specs := st.GetSpec().GetStages()
	if len(st.GetStages()) != len(specs) {
		return fmt.Errorf("%w: run %s has %d stages, its spec %d", ErrCorrupt, st.GetId(), len(st.GetStages()), len(specs))
	}
	for i, s := range st.GetStages() {
		spec := specs[i]
		if s == nil || spec == nil {
			return fmt.Errorf("%w: run %s: stage %d is empty", ErrCorrupt, st.GetId(), i)
		}
		if s.GetName() != spec.GetName() {
			return fmt.Errorf("%w: run %s: stage %d is %q, its spec %q", ErrCorrupt, st.GetId(), i, s.GetName(), spec.GetName())
		}
		shards := max(int(spec.GetShards()), 1)
		if spec.GetRollout() != nil {
			shards = 1
		}
		if len(s.GetShards()) > shards {
			return fmt.Errorf("%w: run %s: stage %s has %d shards, its spec %d", ErrCorrupt, st.GetId(), s.GetName(), len(s.GetShards()), shards)
		}
		for k, sh := range s.GetShards() {
			if sh == nil || sh.GetIndex() != int32(k) {
				return fmt.Errorf("%w: run %s: stage %s: shard %d is not at its index", ErrCorrupt, st.GetId(), s.GetName(), k)
			}
		}
		if err := validRollout(st.GetId(), s, spec); err != nil {
			return err
		}
	}
	return nil
}

func validRollout(run string, s *sluicev1.StageState, spec *sluicev1.StageSpec) error {
	ro := s.GetRollout()
	if ro == nil {
		return nil
	}
	if spec.GetRollout() == nil {
		return fmt.Errorf("%w: run %s: stage %s has a rollout its spec lacks", ErrCorrupt, run, s.GetName())
	}
	steps := len(spec.GetRollout().GetSteps())
	switch ro.GetPhase() {
	case phaseShifting, phaseAnalysing, phasePaused, phaseWaiting:
		if ro.GetStep() < 0 || int(ro.GetStep()) >= steps {
			return fmt.Errorf("%w: run %s: stage %s is at rollout step %d of %d", ErrCorrupt, run, s.GetName(), ro.GetStep()+1, steps)
		}
	}
	if ro.GetStep() < 0 {
		return fmt.Errorf("%w: run %s: stage %s is at rollout step %d", ErrCorrupt, run, s.GetName(), ro.GetStep()+1)
	}
	return nil
}
