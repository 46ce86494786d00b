package decide

import (
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	sluicev1 "github.com/sluice-ci/sluice/proto/sluice/v1"
)

// Policy holds the knobs of the decisions that are not in the pipeline spec.
type Policy struct {
	// DeadlineGrace is added to a stage's timeout before the coordinator gives up on a
	// worker's report; the worker enforces the timeout itself and normally reports first.
	DeadlineGrace time.Duration
	// MaxRetryBackoff caps the exponential retry backoff.
	MaxRetryBackoff time.Duration
	// MaxRunTasks bounds the tasks of one run in flight (published, not finished); the
	// shards of an attempt beyond it wait (held) until the run's tasks end, so a run with
	// thousands of tasks shares the workers with the runs queued after it. 0: no bound.
	MaxRunTasks int
	// MaxStateBytes bounds a run's stored state (the server's maximum payload); a state
	// that grows past it is compacted, and failed when compacting is not enough. 0: no
	// bound.
	MaxStateBytes int
}

// DefaultMaxRunTasks is the in-flight bound of a run when none is configured.
const DefaultMaxRunTasks = 64

// DefaultPolicy is the policy of a coordinator with no overrides.
func DefaultPolicy() Policy {
	return Policy{DeadlineGrace: 30 * time.Second, MaxRetryBackoff: 5 * time.Minute, MaxRunTasks: DefaultMaxRunTasks}
}

// NewRun builds the state of a submitted run before its first transition.
func NewRun(id string, spec *sluicev1.PipelineSpec, req *sluicev1.SubmitRunRequest, traceparent string, now time.Time) *sluicev1.RunState {
	st := &sluicev1.RunState{
		Id:           id,
		Pipeline:     spec.GetName(),
		Spec:         spec,
		Status:       sluicev1.RunStatus_RUN_STATUS_RUNNING,
		Ref:          req.GetRef(),
		SourceDigest: req.GetSourceDigest(),
		Commit:       req.GetCommit(),
		Vars:         req.GetVars(),
		CreatedAt:    timestamppb.New(now),
		UpdatedAt:    timestamppb.New(now),
		Traceparent:  traceparent,
	}
	for _, s := range spec.GetStages() {
		st.Stages = append(st.Stages, &sluicev1.StageState{Name: s.GetName(), Status: sluicev1.StageStatus_STAGE_STATUS_PENDING})
	}
	return st
}

// Decide is the coordinator's whole decision logic: a pure function of the run's state, one
// input and the time. It never mutates st. The planner stores Decision.State with
// compare-and-swap and only then applies the rest. An input that does not apply is an error
// wrapping ErrConflict or ErrNotFound; a state that contradicts its spec, ErrCorrupt.
func (p Policy) Decide(st *sluicev1.RunState, in Input, now time.Time) (Decision, error) {
	if err := Validate(st); err != nil {
		return Decision{}, err
	}
	d := &decider{p: p, st: proto.Clone(st).(*sluicev1.RunState), now: now}
	return d.decide(in)
}

// decide applies in to d.st and, when it changed the run, settles what follows (held
// shards, the state's bound, locks) into the Decision.
func (d *decider) decide(in Input) (Decision, error) {
	changed := d.apply(in)
	if d.err != nil {
		return Decision{}, d.err
	}
	if !changed {
		return Decision{Release: d.releases}, nil
	}
	d.dispatchHeld()
	d.fit()
	d.releaseLocks()
	d.st.UpdatedAt = timestamppb.New(d.now)
	return Decision{State: d.st, Tasks: d.tasks, Cancels: d.cancels, PurgeQueued: d.purge, Acquire: d.acquire, Release: d.releases,
		Evidence: d.evidence, Emitted: d.emitted, Finished: d.finished}, nil
}

// decideResult is Decide for a result, on a state the caller owns (Process's working copy
// of a batch): it changes st itself instead of a copy, so a batch of results on a run of
// a thousand stages does not copy the run once per result. A result that does not apply
// returns before it changes anything (see decider.result), which is what makes this safe
// for results alone.
func (p Policy) decideResult(st *sluicev1.RunState, in ResultIn, now time.Time) (Decision, error) {
	return (&decider{p: p, st: st, now: now}).decide(in)
}
