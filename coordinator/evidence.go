package coordinator

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/sluice-ci/sluice/coordinator/decide"
	"github.com/sluice-ci/sluice/internal/bus"
	"github.com/sluice-ci/sluice/internal/evidence"
	sluicev1 "github.com/sluice-ci/sluice/proto/sluice/v1"
)

// EvidenceArtifact is the name of a rollout stage's signed evidence among its artifacts.
const EvidenceArtifact = "evidence.intoto.json"

// evidenceContentType is DSSE's media type.
const evidenceContentType = "application/vnd.dsse.envelope.v1+json"

// writeEvidence signs the gate's evidence for the rollout of stage in st, stores it in the
// artifacts object store and records it among the stage's artifacts in st. Without an
// evidence key (a fleet without `--auth`) there is nothing to sign with.
func (c *Coordinator) writeEvidence(ctx context.Context, st *sluicev1.RunState, stage string) error {
	if c.cfg.Auth == nil || c.cfg.Auth.EvidenceKey == nil {
		return nil
	}
	var s *sluicev1.StageState
	for _, x := range st.GetStages() {
		if x.GetName() == stage {
			s = x
		}
	}
	if s == nil || s.GetRollout() == nil {
		return fmt.Errorf("stage %s has no rollout", stage)
	}
	data, err := evidence.Sign(c.cfg.Auth.EvidenceKey, evidenceSubjects(st), c.gate(st, s))
	if err != nil {
		return err
	}
	store, err := c.js.ObjectStore(ctx, c.cfg.Names.ArtifactsStore())
	if err != nil {
		return fmt.Errorf("open %s: %w", c.cfg.Names.ArtifactsStore(), err)
	}
	object := fmt.Sprintf("%s/%s/evidence-a%d.intoto.json", st.GetId(), stage, s.GetAttempt())
	info, err := store.Put(ctx, jetstream.ObjectMeta{
		Name: object, Description: "signed gate evidence of " + stage,
		Headers: nats.Header{"Content-Type": []string{evidenceContentType}},
	}, bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("store %s: %w", object, err)
	}
	s.Artifacts = append(s.Artifacts, &sluicev1.ArtifactRef{
		Name: EvidenceArtifact, Object: object, ContentType: evidenceContentType,
		Size: int64(info.Size), Digest: bus.ObjectDigest(info.Digest),
	})
	return nil
}

// evidenceSubjects is what was gated: the source bundle by digest, with the commit it was
// checked out at.
func evidenceSubjects(st *sluicev1.RunState) []evidence.Subject {
	digest := map[string]string{}
	if sum, ok := strings.CutPrefix(st.GetSourceDigest(), "sha256:"); ok {
		digest["sha256"] = sum
	}
	if c := st.GetCommit(); c != "" && !strings.HasSuffix(c, "-dirty") {
		digest["gitCommit"] = c
	}
	if len(digest) == 0 {
		// No source was gated: the statement is about the run itself.
		sum := sha256.Sum256([]byte(st.GetId()))
		return []evidence.Subject{{Name: "run/" + st.GetId(), Digest: map[string]string{"sha256": hex.EncodeToString(sum[:])}}}
	}
	return []evidence.Subject{{Name: "source", Digest: digest}}
}

func (c *Coordinator) gate(st *sluicev1.RunState, s *sluicev1.StageState) evidence.Gate {
	ro := s.GetRollout()
	g := evidence.Gate{
		Run: st.GetId(), Pipeline: st.GetPipeline(), Ref: st.GetRef(), RefProtected: st.GetRefProtected(),
		Commit: st.GetCommit(), SourceDigest: st.GetSourceDigest(), SubmittedBy: st.GetSubmittedBy(),
		Stage: s.GetName(), Reason: ro.GetReason(), Weight: ro.GetWeight(),
		DecidedAt: c.now().UTC(), Coordinator: c.cfg.ID,
	}
	switch ro.GetPhase() {
	case sluicev1.RolloutPhase_ROLLOUT_PHASE_PROMOTED:
		g.Decision = "promoted"
	case sluicev1.RolloutPhase_ROLLOUT_PHASE_ROLLED_BACK:
		g.Decision = "rolled_back"
	default:
		g.Decision = decide.PhaseName(ro.GetPhase())
	}
	for _, x := range st.GetStages() {
		g.Stages = append(g.Stages, evidence.Stage{
			Name: x.GetName(), Status: x.GetStatus().Short(), Attempt: x.GetAttempt(), ApprovedBy: x.GetApprovedBy(),
			Message: x.GetMessage(), StartedAt: timeOf(x.GetStartedAt()), FinishedAt: timeOf(x.GetFinishedAt()),
		})
	}
	for _, v := range ro.GetVerdicts() {
		ev := evidence.Verdict{
			Step: v.GetStep() + 1, Weight: v.GetWeight(), Outcome: verdictOutcome(v.GetVerdict().GetOutcome()),
			Message: v.GetVerdict().GetMessage(), Intervals: v.GetVerdict().GetIntervals(),
			At: v.GetAt().AsTime().UTC().Format(time.RFC3339Nano),
		}
		for _, m := range v.GetVerdict().GetMetrics() {
			ev.Metrics = append(ev.Metrics, evidence.Metric{
				Name: m.GetName(), Rule: m.GetRule(), Outcome: verdictOutcome(m.GetOutcome()),
				Canary: m.GetCanary(), Baseline: m.GetBaseline(), Limit: m.GetLimit(),
				CanarySamples: m.GetCanarySamples(), BaselineSamples: m.GetBaselineSamples(),
				PValue: m.GetPValue(), EffectSize: m.GetEffectSize(),
			})
		}
		g.Verdicts = append(g.Verdicts, ev)
	}
	return g
}

func timeOf(ts *timestamppb.Timestamp) *time.Time {
	if ts == nil {
		return nil
	}
	t := ts.AsTime().UTC()
	return &t
}

func verdictOutcome(o sluicev1.VerdictOutcome) string {
	return strings.ToLower(strings.TrimPrefix(o.String(), "VERDICT_OUTCOME_"))
}

// Events that other systems act on, which the coordinator signs with the evidence key: a
// subscriber that acts on one checks its Sluice-Signature header with the fleet's
// evidence.pub, so a message stored on an event subject by anyone else is not taken for it.
var signedEvents = map[string]bool{
	"run.passed": true, "run.failed": true, "run.cancelled": true,
	"rollout.promoted": true, "rollout.rolled_back": true,
}

// HeaderSignature carries an event's ed25519 signature: base64 over the payload bytes.
const HeaderSignature = "Sluice-Signature"

// SignsEvent reports whether the coordinator signs events of type typ.
func SignsEvent(typ string) bool { return signedEvents[typ] }

func signEvent(key ed25519.PrivateKey, payload []byte) string {
	return base64.StdEncoding.EncodeToString(ed25519.Sign(key, payload))
}

// VerifyEvent checks an event's signature header against the fleet's evidence key.
func VerifyEvent(pub ed25519.PublicKey, payload []byte, header string) bool {
	sig, err := base64.StdEncoding.DecodeString(header)
	return err == nil && ed25519.Verify(pub, payload, sig)
}
