package decide

import (
	"fmt"
	"math"
	"path"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	sluicev1 "github.com/sluice-ci/sluice/proto/sluice/v1"
)

type decider struct {
	p        Policy
	st       *sluicev1.RunState
	now      time.Time
	tasks    []*sluicev1.Task
	cancels  []*sluicev1.CancelSignal
	purge    bool
	acquire  []LockOp
	releases []LockOp
	evidence []string
	emitted  []*sluicev1.Event
	finished []FinishedTask
	err      error
}

func (d *decider) apply(in Input) bool {
	if d.st.GetStatus().Terminal() {
		switch in := in.(type) {
		case CancelIn:
			if d.st.GetStatus() != sluicev1.RunStatus_RUN_STATUS_CANCELLED {
				d.err = fmt.Errorf("%w: run %s already %s; nothing to cancel", ErrConflict, d.st.GetId(), d.st.GetStatus().Short())
			}
		case RollbackIn:
			d.err = fmt.Errorf("%w: run %s already %s; no rollout in progress", ErrConflict, d.st.GetId(), d.st.GetStatus().Short())
		case ApproveIn:
			d.err = fmt.Errorf("%w: run %s already %s; nothing to approve", ErrConflict, d.st.GetId(), d.st.GetStatus().Short())
		case LockGranted:
			d.lockGranted(in.Stage)
		case RetryIn:
			return d.retry(in)
		case ResultIn:
			// A shard stopped because another failed reports after the run ended.
			return d.lateShard(in.Result)
		case RolloutCmd:
			d.err = fmt.Errorf("%w: run %s already %s; no rollout in progress", ErrConflict, d.st.GetId(), d.st.GetStatus().Short())
		}
		return false
	}
	switch in := in.(type) {
	case Start:
		d.emit("run.submitted", "", 0, fmt.Sprintf("%d stages, ref %s", len(d.st.GetStages()), refOrNone(d.st.GetRef())))
		d.advance()
		return true
	case ResultIn:
		return d.result(in.Result)
	case Tick:
		return d.tick()
	case CancelIn:
		d.cancel(in.Reason, in.By)
		return true
	case ApproveIn:
		return d.approve(in.Stage, in.By)
	case MaxDelivered:
		return d.maxDelivered(in)
	case RollbackIn:
		return d.manualRollback(in)
	case LockGranted:
		return d.lockGranted(in.Stage)
	case RolloutCmd:
		return d.rolloutCmd(in)
	case RetryIn:
		d.err = fmt.Errorf("%w: run %s is %s; only a finished run's stages are retried (a running one retries on its own, `retries:`)", ErrConflict, d.st.GetId(), d.st.GetStatus().Short())
	}
	return false
}

func refOrNone(ref string) string {
	if ref == "" {
		return "(none)"
	}
	return ref
}

func (d *decider) stage(name string) (int, *sluicev1.StageState) {
	for i, s := range d.st.GetStages() {
		if s.GetName() == name {
			return i, s
		}
	}
	return -1, nil
}

func (d *decider) spec(i int) *sluicev1.StageSpec { return d.st.GetSpec().GetStages()[i] }

// advance moves every pending stage whose needs are settled, until nothing moves, then
// settles the run when every stage is terminal.
func (d *decider) advance() {
	for moved := true; moved; {
		moved = false
		for i, s := range d.st.GetStages() {
			if s.GetStatus() != sluicev1.StageStatus_STAGE_STATUS_PENDING {
				continue
			}
			if d.release(i, s) {
				moved = true
			}
		}
	}
	d.settle()
}

// release decides a pending stage whose needs may be settled; it reports whether it moved.
func (d *decider) release(i int, s *sluicev1.StageState) bool {
	spec := d.spec(i)
	for _, need := range spec.GetNeeds() {
		_, n := d.stage(need)
		switch {
		case n == nil:
			return false
		case !n.GetStatus().Terminal():
			return false
		case n.GetStatus() != sluicev1.StageStatus_STAGE_STATUS_PASSED:
			d.skip(s, fmt.Sprintf("needs %s, which %s", need, verbOf(n.GetStatus())))
			return true
		}
	}
	if branches := spec.GetWhen().GetBranch(); len(branches) > 0 && !matchAny(branches, d.st.GetRef()) {
		d.skip(s, fmt.Sprintf("ref %s does not match when.branch %v", refOrNone(d.st.GetRef()), branches))
		return true
	}
	if spec.GetApproval() == "required" && s.GetApprovedBy() == "" {
		s.Status = sluicev1.StageStatus_STAGE_STATUS_WAITING_APPROVAL
		d.emit("stage.waiting_approval", s.GetName(), 0, fmt.Sprintf("run `sluice approve %s %s` to release it", d.st.GetId(), s.GetName()))
		return true
	}
	d.dispatchLocked(i)
	return true
}

// dispatchLocked dispatches stage i, first waiting for its concurrency group's lock when it
// has one: one stage of a group runs at a time across all runs.
func (d *decider) dispatchLocked(i int) {
	s := d.st.GetStages()[i]
	group := d.spec(i).GetConcurrency().GetGroup()
	if group == "" || s.GetLockHeld() {
		// After the last attempt: a retried stage's tasks get ids of their own.
		d.dispatch(i, s.GetAttempt()+1)
		return
	}
	s.Status = sluicev1.StageStatus_STAGE_STATUS_WAITING_LOCK
	s.QueuedAt = timestamppb.New(d.now)
	d.acquire = append(d.acquire, LockOp{Group: group, Stage: s.GetName()})
	d.emit("stage.waiting_lock", s.GetName(), 0, fmt.Sprintf("waiting for concurrency group %s (one stage of the group runs at a time)", group))
}

func (d *decider) lockGranted(stage string) bool {
	i, s := d.stage(stage)
	if s == nil {
		return false
	}
	group := d.spec(i).GetConcurrency().GetGroup()
	if s.GetStatus() != sluicev1.StageStatus_STAGE_STATUS_WAITING_LOCK {
		if !s.GetLockHeld() {
			// Granted to a stage that stopped waiting (cancelled): give it back.
			d.releases = append(d.releases, LockOp{Group: group, Stage: stage})
		}
		return false
	}
	s.LockHeld = true
	d.emit("stage.lock_acquired", stage, 0, "holds concurrency group "+group)
	d.dispatch(i, s.GetAttempt()+1)
	return true
}

// releaseLocks gives back the locks of stages that reached a terminal status.
func (d *decider) releaseLocks() {
	for i, s := range d.st.GetStages() {
		if s.GetLockHeld() && s.GetStatus().Terminal() {
			s.LockHeld = false
			d.releases = append(d.releases, LockOp{Group: d.spec(i).GetConcurrency().GetGroup(), Stage: s.GetName()})
		}
	}
}

func verbOf(s sluicev1.StageStatus) string {
	switch s {
	case sluicev1.StageStatus_STAGE_STATUS_FAILED:
		return "failed"
	case sluicev1.StageStatus_STAGE_STATUS_SKIPPED:
		return "was skipped"
	case sluicev1.StageStatus_STAGE_STATUS_CANCELLED:
		return "was cancelled"
	}
	return s.Short()
}

func matchAny(patterns []string, ref string) bool {
	ref = strings.TrimPrefix(ref, "refs/heads/")
	for _, p := range patterns {
		if ok, _ := path.Match(p, ref); ok {
			return true
		}
	}
	return false
}

func (d *decider) skip(s *sluicev1.StageState, why string) {
	s.Status = sluicev1.StageStatus_STAGE_STATUS_SKIPPED
	s.Message = why
	s.FinishedAt = timestamppb.New(d.now)
	d.emit("stage.skipped", s.GetName(), 0, why)
}

// dispatch queues one attempt of stage i: one task per shard.
func (d *decider) dispatch(i int, attempt int32) {
	s := d.st.GetStages()[i]
	shards := max(d.spec(i).GetShards(), 1)
	s.Status = sluicev1.StageStatus_STAGE_STATUS_QUEUED
	s.Attempt = attempt
	s.QueuedAt = timestamppb.New(d.now)
	s.StartedAt, s.FinishedAt, s.Deadline, s.RetryAt = nil, nil, nil, nil
	s.Shards = make([]*sluicev1.ShardState, shards)
	for k := range shards {
		s.Shards[k] = &sluicev1.ShardState{Index: k}
	}
	if d.spec(i).GetRollout() != nil {
		d.emit("stage.queued", s.GetName(), attempt, fmt.Sprintf("attempt %d, rollout of %d steps", attempt, len(d.spec(i).GetRollout().GetSteps())))
		d.startRollout(i, s)
		return
	}
	room, held := d.room(), 0
	for _, sh := range s.Shards {
		if room > 0 {
			room--
			continue
		}
		sh.Held = true
		held++
	}
	d.tasks = append(d.tasks, TasksFor(d.st, i)...)
	msg := fmt.Sprintf("attempt %d", attempt)
	if shards > 1 {
		msg += fmt.Sprintf(", %d shards", shards)
	}
	if held > 0 {
		msg += fmt.Sprintf(" (%d wait: the run has %d tasks in flight at most)", held, d.p.MaxRunTasks)
	}
	d.emit("stage.queued", s.GetName(), attempt, msg)
}

// inFlight counts the run's tasks published and not finished.
func (d *decider) inFlight() int {
	n := 0
	for _, s := range d.st.GetStages() {
		if s.GetStatus() != sluicev1.StageStatus_STAGE_STATUS_QUEUED && s.GetStatus() != sluicev1.StageStatus_STAGE_STATUS_RUNNING {
			continue
		}
		for _, sh := range s.GetShards() {
			if !sh.GetHeld() && sh.GetPhase() != sluicev1.ResultPhase_RESULT_PHASE_FINAL {
				n++
			}
		}
	}
	return n
}

// room is how many more tasks the run may have in flight (always positive without a bound).
func (d *decider) room() int {
	if d.p.MaxRunTasks <= 0 {
		return math.MaxInt
	}
	return d.p.MaxRunTasks - d.inFlight()
}

// dispatchHeld publishes held shards, in stage order, while the run has room.
func (d *decider) dispatchHeld() {
	room := d.room()
	for i, s := range d.st.GetStages() {
		if room <= 0 {
			return
		}
		if s.GetStatus() != sluicev1.StageStatus_STAGE_STATUS_QUEUED && s.GetStatus() != sluicev1.StageStatus_STAGE_STATUS_RUNNING {
			continue
		}
		var released []int32
		for _, sh := range s.GetShards() {
			if sh.GetHeld() && room > 0 {
				sh.Held = false
				room--
				released = append(released, sh.GetIndex())
			}
		}
		for _, t := range TasksFor(d.st, i) {
			if slices.Contains(released, t.GetShardIndex()) {
				d.tasks = append(d.tasks, t)
			}
		}
	}
}

// ahead reports whether a result belongs to a later state of its stage than the one read: a
// later attempt or rollout step, or the current attempt before the state shows it queued.
// States only move forward, so a result of the past is a repeat to drop; a result of the
// future means the state was read from a replica that has not caught up (or before the
// write that queued the task), and dropping it would lose it.
func (d *decider) ahead(s *sluicev1.StageState, r *sluicev1.Result) bool {
	if r.GetAttempt() != s.GetAttempt() {
		return r.GetAttempt() > s.GetAttempt()
	}
	if seq := s.GetRollout().GetSeq(); r.GetRolloutSeq() != seq {
		return r.GetRolloutSeq() > seq
	}
	switch s.GetStatus() {
	case sluicev1.StageStatus_STAGE_STATUS_PENDING, sluicev1.StageStatus_STAGE_STATUS_WAITING_APPROVAL, sluicev1.StageStatus_STAGE_STATUS_WAITING_LOCK:
		return true
	}
	return false
}

func (d *decider) result(r *sluicev1.Result) bool {
	i, s := d.stage(r.GetStage())
	if s == nil {
		return false
	}
	if s.GetStatus().Terminal() || s.GetStatus() == sluicev1.StageStatus_STAGE_STATUS_RETRY_WAIT {
		return d.lateShard(r)
	}
	if d.ahead(s, r) {
		d.err = fmt.Errorf("%w: run %s stage %s: a result of attempt %d (rollout step %d) on a state at attempt %d, %s",
			ErrNotYet, d.st.GetId(), s.GetName(), r.GetAttempt(), r.GetRolloutSeq(), s.GetAttempt(), s.GetStatus().Short())
		return false
	}
	if r.GetAttempt() != s.GetAttempt() || r.GetRolloutSeq() != s.GetRollout().GetSeq() {
		return false
	}
	if s.GetStatus() != sluicev1.StageStatus_STAGE_STATUS_QUEUED && s.GetStatus() != sluicev1.StageStatus_STAGE_STATUS_RUNNING {
		return false
	}
	if r.GetShardIndex() < 0 || int(r.GetShardIndex()) >= len(s.GetShards()) {
		return false
	}
	sh := s.GetShards()[r.GetShardIndex()]
	switch r.GetPhase() {
	case sluicev1.ResultPhase_RESULT_PHASE_STARTED:
		if sh.GetPhase() == sluicev1.ResultPhase_RESULT_PHASE_FINAL || r.GetDelivery() <= sh.GetDelivery() && sh.GetPhase() != sluicev1.ResultPhase_RESULT_PHASE_UNSPECIFIED {
			return false
		}
		sh.Phase = sluicev1.ResultPhase_RESULT_PHASE_STARTED
		sh.Worker = sluicev1.Clip(r.GetWorker(), maxNameBytes)
		sh.Delivery = r.GetDelivery()
		sh.StartedAt = timestampOr(r.GetStartedAt(), d.now)
		d.markRunning(i, s, r)
		d.extendDeadline(i, s)
		if s.GetRollout() != nil {
			d.rolloutStarted(i, s)
		}
		return true
	case sluicev1.ResultPhase_RESULT_PHASE_FINAL:
		if sh.GetPhase() == sluicev1.ResultPhase_RESULT_PHASE_FINAL {
			return false
		}
		d.taskFinished(i, s, sh, r)
		d.finishShard(s, sh, r)
		d.markRunning(i, s, r)
		if s.GetRollout() != nil {
			d.rolloutResult(i, s, r)
			return true
		}
		d.finalShard(i, s, sh)
		return true
	}
	return false
}

// taskFinished records the task r ends, before the result changes the stage.
func (d *decider) taskFinished(i int, s *sluicev1.StageState, sh *sluicev1.ShardState, r *sluicev1.Result) {
	f := FinishedTask{
		Stage: s.GetName(), Attempt: r.GetAttempt(), Shard: r.GetShardIndex(), RolloutSeq: r.GetRolloutSeq(),
		Worker: r.GetWorker(), Outcome: r.GetOutcome(),
		Start: timestampOr(r.GetStartedAt(), d.now).AsTime(), End: timestampOr(r.GetFinishedAt(), d.now).AsTime(),
	}
	if sh.GetStartedAt() != nil && r.GetStartedAt() == nil {
		f.Start = sh.GetStartedAt().AsTime()
	}
	if ro := s.GetRollout(); ro != nil {
		if t := rolloutTask(d.spec(i), ro); t != nil {
			f.Action = ActionName(t.GetAction())
			if t.GetAction() == sluicev1.RolloutAction_ROLLOUT_ACTION_SET_WEIGHT || t.GetAction() == sluicev1.RolloutAction_ROLLOUT_ACTION_ANALYSE {
				f.Action += fmt.Sprintf(" %d", t.GetWeight())
			}
		}
	}
	d.finished = append(d.finished, f)
}

// extendDeadline keeps a sharded stage's deadline a timeout past its latest shard's start:
// held shards start as the run's earlier tasks end.
func (d *decider) extendDeadline(i int, s *sluicev1.StageState) {
	t := d.spec(i).GetTimeout()
	if t == nil || s.GetRollout() != nil || s.GetStatus() != sluicev1.StageStatus_STAGE_STATUS_RUNNING {
		return
	}
	if due := d.now.Add(t.AsDuration() + d.p.DeadlineGrace); s.GetDeadline() == nil || due.After(s.GetDeadline().AsTime()) {
		s.Deadline = timestamppb.New(due)
	}
}

func timestampOr(t *timestamppb.Timestamp, now time.Time) *timestamppb.Timestamp {
	if t != nil {
		return t
	}
	return timestamppb.New(now)
}

func (d *decider) markRunning(i int, s *sluicev1.StageState, r *sluicev1.Result) {
	if s.GetStatus() != sluicev1.StageStatus_STAGE_STATUS_QUEUED {
		return
	}
	s.Status = sluicev1.StageStatus_STAGE_STATUS_RUNNING
	// A worker reports a task's start once it has run a while, or only with its end: the
	// start it reports is when the stage began, within the time the stage was queued.
	start := d.now
	if at := r.GetStartedAt(); at != nil && at.AsTime().Before(start) && !at.AsTime().Before(s.GetQueuedAt().AsTime()) {
		start = at.AsTime()
	}
	s.StartedAt = timestamppb.New(start)
	if t := d.spec(i).GetTimeout(); t != nil && s.GetRollout() == nil {
		s.Deadline = timestamppb.New(d.now.Add(t.AsDuration() + d.p.DeadlineGrace))
	}
	msg := fmt.Sprintf("attempt %d on %s", s.GetAttempt(), r.GetWorker())
	if r.GetDelivery() > 1 {
		msg += fmt.Sprintf(" (delivery %d)", r.GetDelivery())
	}
	d.emit("stage.started", s.GetName(), s.GetAttempt(), msg)
}

func (d *decider) finalShard(i int, s *sluicev1.StageState, sh *sluicev1.ShardState) {
	if sh.GetOutcome() != sluicev1.Outcome_OUTCOME_PASSED {
		why := sh.GetMessage()
		if why == "" {
			why = sh.GetOutcome().Short()
		}
		if len(s.GetShards()) > 1 {
			why = fmt.Sprintf("shard %d/%d: %s", sh.GetIndex()+1, len(s.GetShards()), why)
		}
		d.failAttempt(i, s, why)
		s.Message = withTotals(s, "", s.GetMessage())
		return
	}
	for _, other := range s.GetShards() {
		if other.GetPhase() != sluicev1.ResultPhase_RESULT_PHASE_FINAL {
			return
		}
	}
	s.Status = sluicev1.StageStatus_STAGE_STATUS_PASSED
	s.FinishedAt = timestamppb.New(d.now)
	s.Deadline = nil
	s.Message = sh.GetMessage()
	if n := len(s.GetShards()); n > 1 {
		// The totals speak for every shard; without test counts, the last shard's message.
		s.Message = shardTotals(s)
		if s.Message == "" {
			s.Message = sluicev1.Clip(fmt.Sprintf("all %d shards passed (last: %s)", n, sh.GetMessage()), maxMessageBytes)
		}
	}
	d.emit("stage.passed", s.GetName(), s.GetAttempt(), durationMsg(s))
	d.advance()
}

func durationMsg(s *sluicev1.StageState) string {
	if s.GetStartedAt() == nil || s.GetFinishedAt() == nil {
		return ""
	}
	return s.GetFinishedAt().AsTime().Sub(s.GetStartedAt().AsTime()).Round(time.Millisecond).String()
}

// failAttempt ends the current attempt of stage i: another attempt after a backoff while
// retries remain, else the stage fails. Shards of the attempt still running are cancelled.
func (d *decider) failAttempt(i int, s *sluicev1.StageState, why string) {
	for _, sh := range s.GetShards() {
		if sh.GetPhase() != sluicev1.ResultPhase_RESULT_PHASE_FINAL {
			d.cancels = append(d.cancels, &sluicev1.CancelSignal{RunId: d.st.GetId(), Stage: s.GetName(), Attempt: s.GetAttempt(), Reason: "another shard failed: " + why})
			break
		}
	}
	s.Deadline = nil
	s.Message = why
	if s.GetAttempt() <= d.spec(i).GetRetries() {
		wait := d.backoff(i, s.GetAttempt())
		s.Status = sluicev1.StageStatus_STAGE_STATUS_RETRY_WAIT
		s.RetryAt = timestamppb.New(d.now.Add(wait))
		d.emit("stage.retrying", s.GetName(), s.GetAttempt(), fmt.Sprintf("%s; attempt %d in %s", why, s.GetAttempt()+1, wait))
		return
	}
	s.Status = sluicev1.StageStatus_STAGE_STATUS_FAILED
	s.FinishedAt = timestamppb.New(d.now)
	d.emit("stage.failed", s.GetName(), s.GetAttempt(), why)
	d.advance()
}

func (d *decider) backoff(i int, attempt int32) time.Duration {
	base := time.Second
	if b := d.spec(i).GetRetryBackoff(); b != nil {
		base = b.AsDuration()
	}
	wait := base << min(attempt-1, 20)
	if d.p.MaxRetryBackoff > 0 && wait > d.p.MaxRetryBackoff {
		wait = d.p.MaxRetryBackoff
	}
	return wait
}

// settle ends the run once every stage is terminal.
func (d *decider) settle() {
	failed := 0
	for _, s := range d.st.GetStages() {
		if !s.GetStatus().Terminal() {
			return
		}
		if s.GetStatus() == sluicev1.StageStatus_STAGE_STATUS_FAILED {
			failed++
		}
	}
	// The result that ends the run may be the one that outgrows the state's bound: the run
	// fails for it then, rather than passing in a state the server cannot store.
	if d.fit(); d.st.GetStatus().Terminal() {
		return
	}
	d.st.FinishedAt = timestamppb.New(d.now)
	if failed > 0 {
		d.st.Status = sluicev1.RunStatus_RUN_STATUS_FAILED
		d.st.Message = fmt.Sprintf("%d of %d stages failed", failed, len(d.st.GetStages()))
		d.emit("run.failed", "", 0, d.st.GetMessage())
		return
	}
	d.st.Status = sluicev1.RunStatus_RUN_STATUS_PASSED
	d.st.Message = "all stages passed or were skipped"
	d.emit("run.passed", "", 0, d.st.GetFinishedAt().AsTime().Sub(d.st.GetCreatedAt().AsTime()).Round(time.Millisecond).String())
}

func (d *decider) tick() bool {
	changed := false
	for i, s := range d.st.GetStages() {
		switch {
		case s.GetStatus() == sluicev1.StageStatus_STAGE_STATUS_RETRY_WAIT && !d.now.Before(s.GetRetryAt().AsTime()):
			d.dispatch(i, s.GetAttempt()+1)
			changed = true
		case s.GetStatus() == sluicev1.StageStatus_STAGE_STATUS_RUNNING && s.GetDeadline() != nil && !d.now.Before(s.GetDeadline().AsTime()):
			if t := rolloutTask(d.spec(i), s.GetRollout()); s.GetRollout() != nil && t != nil {
				d.rolloutActionLost(i, s, fmt.Sprintf("no result for %s within %s", ActionName(t.GetAction()), actionTimeout(d.spec(i), t)))
			} else {
				d.failAttempt(i, s, fmt.Sprintf("no result within the timeout of %s", d.spec(i).GetTimeout().AsDuration()))
			}
			changed = true
		case s.GetStatus() == sluicev1.StageStatus_STAGE_STATUS_RUNNING && s.GetRollout() != nil:
			changed = d.rolloutTick(i, s) || changed
		}
	}
	return changed
}

func (d *decider) cancel(reason, by string) {
	if reason == "" {
		reason = "cancelled"
	}
	msg := reason
	if by != "" {
		msg = fmt.Sprintf("%s (cancelled by %s)", reason, by)
		d.st.CancelledBy = by
	}
	for _, s := range d.st.GetStages() {
		if s.GetStatus().Terminal() {
			continue
		}
		s.Status = sluicev1.StageStatus_STAGE_STATUS_CANCELLED
		s.FinishedAt = timestamppb.New(d.now)
		s.Deadline, s.RetryAt = nil, nil
		s.Message = reason
		d.emit("stage.cancelled", s.GetName(), s.GetAttempt(), reason)
	}
	d.st.Status = sluicev1.RunStatus_RUN_STATUS_CANCELLED
	d.st.CancelReason = reason
	d.st.Message = msg
	d.st.FinishedAt = timestamppb.New(d.now)
	d.purge = true
	d.cancels = append(d.cancels, &sluicev1.CancelSignal{RunId: d.st.GetId(), Reason: reason})
	ev := d.emit("run.cancelled", "", 0, msg)
	if by != "" {
		ev.Detail = map[string]string{"by": by}
	}
}

func (d *decider) approve(stage, by string) bool {
	i, s := d.stage(stage)
	if by == "" {
		by = "unknown"
	}
	switch {
	case s == nil:
		d.err = fmt.Errorf("%w: run %s has no stage %q", ErrNotFound, d.st.GetId(), stage)
		return false
	case s.GetStatus() == sluicev1.StageStatus_STAGE_STATUS_RUNNING && rolloutActive(s):
		return d.rolloutApprove(i, s, by)
	case d.spec(i).GetApproval() != "required":
		d.err = fmt.Errorf("%w: stage %s does not require approval", ErrConflict, stage)
		return false
	case s.GetStatus() != sluicev1.StageStatus_STAGE_STATUS_WAITING_APPROVAL:
		d.err = fmt.Errorf("%w: stage %s is %s, not waiting for approval; nothing to approve", ErrConflict, stage, s.GetStatus().Short())
		if s.GetApprovedBy() != "" {
			d.err = fmt.Errorf("%w: stage %s was approved already, by %s", ErrConflict, stage, s.GetApprovedBy())
		}
		return false
	}
	s.ApprovedBy = by
	ev := d.emit("stage.approved", stage, 0, "approved by "+by)
	ev.Detail = map[string]string{"by": by}
	d.dispatchLocked(i)
	return true
}

func (d *decider) maxDelivered(m MaxDelivered) bool {
	i, s := d.stage(m.Stage)
	if s == nil || s.GetAttempt() != m.Attempt || (s.GetStatus() != sluicev1.StageStatus_STAGE_STATUS_QUEUED && s.GetStatus() != sluicev1.StageStatus_STAGE_STATUS_RUNNING) {
		return false
	}
	if int(m.Shard) < len(s.GetShards()) && s.GetShards()[m.Shard].GetPhase() == sluicev1.ResultPhase_RESULT_PHASE_FINAL {
		return false
	}
	if s.GetRollout() != nil {
		if m.RolloutSeq != s.GetRollout().GetSeq() {
			return false
		}
		d.rolloutActionLost(i, s, fmt.Sprintf("the %s task was delivered %d times and no worker finished it", ActionName(rolloutTask(d.spec(i), s.GetRollout()).GetAction()), m.Deliveries))
		return true
	}
	d.failAttempt(i, s, fmt.Sprintf("the task was delivered %d times and no worker finished it (workers crashed or lost their lease)", m.Deliveries))
	return true
}

func (d *decider) emit(typ, stage string, attempt int32, msg string) *sluicev1.Event {
	d.st.EventSeq++
	ev := &sluicev1.Event{
		Id:       fmt.Sprintf("%s/%d", d.st.GetId(), d.st.GetEventSeq()),
		Type:     typ,
		Time:     timestamppb.New(d.now),
		Pipeline: d.st.GetPipeline(),
		RunId:    d.st.GetId(),
		Stage:    stage,
		Attempt:  attempt,
		Seq:      d.st.GetEventSeq(),
		Message:  msg,
		Ref:      d.st.GetRef(),
	}
	d.st.Outbox = append(d.st.Outbox, ev)
	d.emitted = append(d.emitted, ev)
	return ev
}
