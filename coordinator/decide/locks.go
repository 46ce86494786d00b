package decide

import sluicev1 "github.com/sluice-ci/sluice/proto/sluice/v1"

// Concurrency groups: a stage with `concurrency: {group: G}` runs only while it holds G's
// lock. The planner keeps the locks (one KV key per group, the arbiter between
// coordinators); which stage a free group goes to, and whether a holder still needs its
// lock, is decided here.

// NextHolder is the stage a free group goes to: of the stages waiting for it in runs, the
// one that has waited longest (ties by run id, then stage order). ok is false when none
// waits.
func NextHolder(runs []*sluicev1.RunState, group string) (run, stage string, ok bool) {
	var since int64
	for _, st := range runs {
		for i, s := range st.GetStages() {
			if s.GetStatus() != sluicev1.StageStatus_STAGE_STATUS_WAITING_LOCK || st.GetSpec().GetStages()[i].GetConcurrency().GetGroup() != group {
				continue
			}
			t := s.GetQueuedAt().AsTime().UnixNano()
			if !ok || t < since || t == since && st.GetId() < run {
				run, stage, since, ok = st.GetId(), s.GetName(), t, true
			}
		}
	}
	return run, stage, ok
}

// WaitedGroups lists the groups some stage of runs waits for.
func WaitedGroups(runs []*sluicev1.RunState) []string {
	seen := map[string]bool{}
	var groups []string
	for _, st := range runs {
		for i, s := range st.GetStages() {
			g := st.GetSpec().GetStages()[i].GetConcurrency().GetGroup()
			if s.GetStatus() == sluicev1.StageStatus_STAGE_STATUS_WAITING_LOCK && !seen[g] {
				seen[g] = true
				groups = append(groups, g)
			}
		}
	}
	return groups
}

// Holding is what a lock's holder makes of its lock.
type Holding int

const (
	// HolderActive: the stage holds the lock and still needs it.
	HolderActive Holding = iota
	// HolderGone: the run or stage ended, or no longer needs the lock: free it.
	HolderGone
	// HolderUngranted: the stage still waits although it holds the lock (a crash lost the
	// grant): grant it again.
	HolderUngranted
)

// HolderOf classifies the holder of a lock, stage of the run st (nil: the run is gone).
func HolderOf(st *sluicev1.RunState, stage string) Holding {
	for _, s := range st.GetStages() {
		if s.GetName() != stage {
			continue
		}
		switch {
		case s.GetStatus() == sluicev1.StageStatus_STAGE_STATUS_WAITING_LOCK:
			return HolderUngranted
		case s.GetStatus().Terminal() || !s.GetLockHeld():
			return HolderGone
		}
		return HolderActive
	}
	return HolderGone
}
