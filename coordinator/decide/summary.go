package decide

import (
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	sluicev1 "github.com/sluice-ci/sluice/proto/sluice/v1"
)

// NextWake is when the run next needs a Tick (zero: never, until some input arrives).
func NextWake(st *sluicev1.RunState) time.Time {
	var next time.Time
	for _, s := range st.GetStages() {
		var t *timestamppb.Timestamp
		switch s.GetStatus() {
		case sluicev1.StageStatus_STAGE_STATUS_RETRY_WAIT:
			t = s.GetRetryAt()
		case sluicev1.StageStatus_STAGE_STATUS_RUNNING:
			t = s.GetDeadline()
			if s.GetRollout().GetPhase() == phasePaused {
				t = s.GetRollout().GetPauseUntil()
			}
		}
		if t != nil && (next.IsZero() || t.AsTime().Before(next)) {
			next = t.AsTime()
		}
	}
	return next
}

// Summary condenses a run for listings.
func Summary(st *sluicev1.RunState) *sluicev1.RunSummary {
	sum := &sluicev1.RunSummary{
		Id: st.GetId(), Pipeline: st.GetPipeline(), Status: st.GetStatus(), Ref: st.GetRef(),
		CreatedAt: st.GetCreatedAt(), FinishedAt: st.GetFinishedAt(), StagesTotal: int32(len(st.GetStages())),
	}
	for _, s := range st.GetStages() {
		switch s.GetStatus() {
		case sluicev1.StageStatus_STAGE_STATUS_PASSED:
			sum.StagesPassed++
		case sluicev1.StageStatus_STAGE_STATUS_FAILED:
			sum.StagesFailed++
		}
	}
	return sum
}
