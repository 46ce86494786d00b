package decide

import (
	"fmt"
	"slices"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	sluicev1 "github.com/sluice-ci/sluice/proto/sluice/v1"
)

// A run's state is one KV value, bounded by the server's maximum payload. What results add
// to it is bounded as it is folded in, and a state that still outgrows the limit is
// compacted, then failed: a run whose state cannot be stored must fail alone, with a
// reason, and never block the runs beside it.

// Bounds of what one stage keeps in the run's state.
const (
	maxStageFindings  = 50
	maxStageMetrics   = 64
	maxStageArtifacts = 64
	maxMessageBytes   = 1 << 10
	maxNameBytes      = 256
	maxFindingBytes   = 512
)

// fold adds a final result's findings, metrics and artifacts to its stage, within bounds.
func (d *decider) fold(s *sluicev1.StageState, r *sluicev1.Result) {
	for _, f := range r.GetFindings() {
		if len(s.GetFindings()) >= maxStageFindings {
			s.FindingsOmitted++
			continue
		}
		f = proto.Clone(f).(*sluicev1.Finding)
		f.Message, f.Excerpt, f.File = sluicev1.Clip(f.GetMessage(), maxFindingBytes), sluicev1.Clip(f.GetExcerpt(), maxFindingBytes), sluicev1.Clip(f.GetFile(), maxNameBytes)
		f.Rule, f.Fingerprint = sluicev1.Clip(f.GetRule(), maxNameBytes), sluicev1.Clip(f.GetFingerprint(), maxNameBytes)
		s.Findings = append(s.Findings, f)
	}
	for _, m := range r.GetMetrics() {
		if len(s.GetMetrics()) < maxStageMetrics {
			m = proto.Clone(m).(*sluicev1.Metric)
			m.Name = sluicev1.Clip(m.GetName(), maxNameBytes)
			for k, v := range m.GetLabels() {
				m.Labels[k] = sluicev1.Clip(v, maxNameBytes)
			}
			s.Metrics = append(s.Metrics, m)
		}
	}
	for _, a := range r.GetArtifacts() {
		if len(s.GetArtifacts()) < maxStageArtifacts {
			s.Artifacts = append(s.Artifacts, a)
		}
	}
}

// fit keeps the state within Policy.MaxStateBytes: first it drops what the stages' artifacts
// hold anyway (findings, then metrics) and shortens messages; a state still too large fails
// the run.
func (d *decider) fit() {
	limit := d.p.MaxStateBytes
	if limit <= 0 || proto.Size(d.st) <= limit {
		return
	}
	for _, s := range d.st.GetStages() {
		s.FindingsOmitted += int32(len(s.GetFindings()))
		s.Findings = nil
	}
	if proto.Size(d.st) <= limit {
		return
	}
	for _, s := range d.st.GetStages() {
		// A sharded stage's totals stay: its later shards add to them.
		s.Metrics = slices.DeleteFunc(s.Metrics, func(m *sluicev1.Metric) bool { return !isTotal(m) })
		s.Message = sluicev1.Clip(s.GetMessage(), 128)
		for _, sh := range s.GetShards() {
			sh.Message = sluicev1.Clip(sh.GetMessage(), 128)
		}
	}
	if size := proto.Size(d.st); size > limit && !d.st.GetStatus().Terminal() {
		d.fail(fmt.Sprintf("the run's state grew to %d bytes, above the %d bytes the server stores in one value: its stages report too much (artifacts, messages); split the pipeline", size, limit))
	}
}

// fail ends a run that cannot go on, in a state small enough to store: its unfinished
// stages are cancelled (one run.failed event says why, not one event per stage), and what
// the stages reported beyond their outcome goes, their shards last.
func (d *decider) fail(why string) {
	for _, s := range d.st.GetStages() {
		s.Findings, s.Metrics = nil, nil
		for _, sh := range s.GetShards() {
			sh.Message = ""
		}
		if s.GetStatus().Terminal() {
			continue
		}
		s.Status = sluicev1.StageStatus_STAGE_STATUS_CANCELLED
		s.FinishedAt, s.Deadline, s.RetryAt = timestamppb.New(d.now), nil, nil
		s.Message = "cancelled: the run failed"
	}
	if d.p.MaxStateBytes > 0 && proto.Size(d.st) > d.p.MaxStateBytes {
		for _, s := range d.st.GetStages() {
			s.Shards = nil
		}
	}
	d.st.Status = sluicev1.RunStatus_RUN_STATUS_FAILED
	d.st.Message = why
	d.st.FinishedAt = timestamppb.New(d.now)
	d.purge = true
	d.cancels = append(d.cancels, &sluicev1.CancelSignal{RunId: d.st.GetId(), Reason: why})
	d.emit("run.failed", "", 0, why)
}
