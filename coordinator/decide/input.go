package decide

import sluicev1 "github.com/sluice-ci/sluice/proto/sluice/v1"

// Input is something that happened to a run. Decide folds inputs into the run's state.
type Input interface{ isInput() }

// Start is a new run's first transition: it announces the run and dispatches its roots.
type Start struct{}

// ResultIn is a worker's report (STARTED or FINAL) for one shard of one attempt.
type ResultIn struct{ Result *sluicev1.Result }

// Tick is the passing of time: due retries are dispatched and overdue attempts failed.
type Tick struct{}

// CancelIn stops the run; By is the authenticated principal that asked.
type CancelIn struct{ Reason, By string }

// ApproveIn releases a stage that waits for approval; By is the authenticated principal.
type ApproveIn struct{ Stage, By string }

// RollbackIn rolls back every rollout of the run that is in progress.
type RollbackIn struct{ Reason, By string }

// RolloutCmd acts on a rollout in progress: promote skips its current pause or analysis,
// pause holds it before its next step, resume lets it go on, abort rolls it back. Stage ""
// names the run's only rollout in progress.
type RolloutCmd struct{ Stage, Action, Reason, By string }

// Rollout actions of RolloutCmd.
const (
	RolloutPromote = "promote"
	RolloutPause   = "pause"
	RolloutResume  = "resume"
	RolloutAbort   = "abort"
)

// RolloutActions are the actions RolloutCmd takes.
var RolloutActions = []string{RolloutPromote, RolloutPause, RolloutResume, RolloutAbort}

// RetryIn runs a failed or cancelled stage of a finished run again, and the stages that
// were skipped or cancelled after it; the run goes on from there.
type RetryIn struct{ Stage, By string }

// MaxDelivered reports a task the server gave up redelivering.
type MaxDelivered struct {
	Stage      string
	Attempt    int32
	Shard      int32
	RolloutSeq int32
	Deliveries int
}

// LockGranted tells a stage waiting for its concurrency group that the planner took the
// group's lock for it.
type LockGranted struct{ Stage string }

func (Start) isInput()        {}
func (ResultIn) isInput()     {}
func (Tick) isInput()         {}
func (CancelIn) isInput()     {}
func (ApproveIn) isInput()    {}
func (RollbackIn) isInput()   {}
func (MaxDelivered) isInput() {}
func (LockGranted) isInput()  {}
func (RolloutCmd) isInput()   {}
func (RetryIn) isInput()      {}
