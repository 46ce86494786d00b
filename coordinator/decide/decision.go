package decide

import (
	"time"

	sluicev1 "github.com/sluice-ci/sluice/proto/sluice/v1"
)

// Decision is what Decide wants done. Its events are in State.Outbox, which the planner
// publishes after storing State.
type Decision struct {
	// State is the new state; nil when the input changed nothing.
	State *sluicev1.RunState
	// Tasks to publish (one per shard of each dispatched attempt).
	Tasks []*sluicev1.Task
	// Cancels to signal to workers.
	Cancels []*sluicev1.CancelSignal
	// PurgeQueued asks for every queued task of the run to be removed.
	PurgeQueued bool
	// Acquire asks for the locks of stages that wait for their concurrency group.
	Acquire []LockOp
	// Release gives back the locks of stages that no longer need them (possibly with no
	// change of state: a lock granted to a stage that stopped waiting).
	Release []LockOp
	// Evidence names the stages whose rollout this decision ended (promoted or rolled
	// back): the planner signs the gate's evidence and records it as their artifact before
	// the state is stored.
	Evidence []string
	// Emitted are the events this decision added to State.Outbox, in order (the outbox
	// also keeps earlier decisions' events until their publish is acknowledged): what the
	// coordinator counts in its metrics.
	Emitted []*sluicev1.Event
	// Finished are the tasks whose final result this decision took: what the coordinator
	// traces, one span each.
	Finished []FinishedTask
}

// FinishedTask is one task's work as its final result told it.
type FinishedTask struct {
	Stage      string
	Attempt    int32
	Shard      int32
	RolloutSeq int32
	// Action names a rollout task's action ("set weight 10"); "" for a stage's shard.
	Action     string
	Worker     string
	Outcome    sluicev1.Outcome
	Start, End time.Time
}

// LockOp names the lock of one stage's concurrency group.
type LockOp struct {
	Group, Stage string
}

// Merge folds a later decision on the same run into d, as one decision: the later state
// replaces the earlier one and the effects add up. Every field of Decision is merged here
// (a test checks it), so an effect added to Decision cannot be dropped by a batch.
func (d *Decision) Merge(later Decision) {
	if later.State != nil {
		d.State = later.State
	}
	d.Tasks = append(d.Tasks, later.Tasks...)
	d.Cancels = append(d.Cancels, later.Cancels...)
	d.PurgeQueued = d.PurgeQueued || later.PurgeQueued
	d.Acquire = append(d.Acquire, later.Acquire...)
	d.Release = append(d.Release, later.Release...)
	d.Evidence = append(d.Evidence, later.Evidence...)
	d.Emitted = append(d.Emitted, later.Emitted...)
	d.Finished = append(d.Finished, later.Finished...)
}
