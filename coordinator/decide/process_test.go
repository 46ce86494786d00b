package decide

import (
	"errors"
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"

	sluicev1 "github.com/sluice-ci/sluice/proto/sluice/v1"
)

func twoStageRun() *sluicev1.RunState {
	spec := &sluicev1.PipelineSpec{Version: 1, Name: "web", Stages: []*sluicev1.StageSpec{stage("a"), stage("b", "a")}}
	return NewRun("r1", spec, &sluicev1.SubmitRunRequest{Ref: "main"}, "", t0)
}

func seqs(evs []*sluicev1.Event) []int64 {
	var out []int64
	for _, ev := range evs {
		out = append(out, ev.GetSeq())
	}
	return out
}

// Another coordinator storing the run first makes Process decide again on what it stored;
// the batch takes effect once.
func TestProcessDecidesAgainAfterAConflict(t *testing.T) {
	h := NewHarness(DefaultPolicy(), t0)
	if _, err := h.Create(twoStageRun()); err != nil {
		t.Fatal(err)
	}
	h.Conflicts = 3
	d, err := h.Do("r1", passed("a", 1))
	if err != nil {
		t.Fatal(err)
	}
	if got := taskStages(d); !slices.Equal(got, []string{"b"}) {
		t.Fatalf("dispatched %v, want b once", got)
	}
	stored := 0
	for _, s := range h.Submitted {
		if s.State != nil {
			stored++
		}
	}
	if stored != 2 {
		t.Fatalf("%d decisions stored, want the creation and the batch", stored)
	}
}

func TestProcessGivesUpOnEndlessConflicts(t *testing.T) {
	h := NewHarness(DefaultPolicy(), t0)
	if _, err := h.Create(twoStageRun()); err != nil {
		t.Fatal(err)
	}
	h.Conflicts = maxConflicts
	if _, err := h.Do("r1", passed("a", 1)); !errors.Is(err, ErrConflict) {
		t.Fatalf("%v, want ErrConflict after %d conflicts", err, maxConflicts)
	}
}

func TestProcessCreatesARunOnce(t *testing.T) {
	h := NewHarness(DefaultPolicy(), t0)
	if _, err := h.Create(twoStageRun()); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Create(twoStageRun()); !errors.Is(err, ErrConflict) {
		t.Fatalf("creating r1 again: %v, want ErrConflict", err)
	}
	if _, err := h.Do("nope", Tick{}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("an input for no run: %v, want ErrNotFound", err)
	}
}

// An event whose publish failed stays in the outbox of every later state until a publish of
// it succeeds: a decision never drops what was not delivered.
func TestProcessKeepsUnpublishedEventsInTheOutbox(t *testing.T) {
	h := NewHarness(DefaultPolicy(), t0)
	h.FailPublish = true
	if _, err := h.Create(twoStageRun()); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Do("r1", started("a", 1)); err != nil {
		t.Fatal(err)
	}
	pending := seqs(h.State("r1").GetOutbox())
	if !slices.Equal(pending, []int64{1, 2, 3}) {
		t.Fatalf("outbox %v after two decisions whose events were not published, want 1 2 3", pending)
	}
	h.FailPublish = false
	if _, err := h.Do("r1", passed("a", 1)); err != nil {
		t.Fatal(err)
	}
	if got := seqs(h.Published); !slices.Equal(got, []int64{1, 2, 3, 4, 5}) {
		t.Fatalf("published %v, want every event once, in order", got)
	}
	if _, err := h.Do("r1", started("b", 1)); err != nil {
		t.Fatal(err)
	}
	if got := seqs(h.State("r1").GetOutbox()); !slices.Equal(got, []int64{6}) {
		t.Fatalf("outbox %v: published events must leave it", got)
	}
}

// A batch decides its inputs in order on one state: a rejected input does not stop the
// others.
func TestProcessBatchesInputsAndRejectsOnlyWhatDoesNotApply(t *testing.T) {
	h := NewHarness(DefaultPolicy(), t0)
	if _, err := h.Create(twoStageRun()); err != nil {
		t.Fatal(err)
	}
	st, rejected, err := h.Policy.Process(t.Context(), h, Batch{Run: "r1", Inputs: []Input{
		started("a", 1), ApproveIn{Stage: "a"}, passed("a", 1), nil,
	}}, func() time.Time { return h.Now })
	if err != nil {
		t.Fatal(err)
	}
	if rejected[0] != nil || !errors.Is(rejected[1], ErrConflict) || rejected[2] != nil || rejected[3] != nil {
		t.Fatalf("rejected %v, want only the approval", rejected)
	}
	if st.GetStages()[0].GetStatus() != sluicev1.StageStatus_STAGE_STATUS_PASSED || st.GetStages()[1].GetStatus() != sluicev1.StageStatus_STAGE_STATUS_QUEUED {
		t.Fatalf("after the batch: %v", st.GetStages())
	}
}

// decideOneByOne is what decideBatch did before it decided results in place: every input
// through Decide, each on a copy.
func decideOneByOne(p Policy, cur Stored, ins []Input, now time.Time) (*sluicev1.RunState, Decision, []error) {
	next := proto.Clone(cur.State).(*sluicev1.RunState)
	next.Outbox = unpublished(next.GetOutbox(), cur.Published)
	var d Decision
	rejected := make([]error, len(ins))
	for i, in := range ins {
		di, err := p.Decide(next, in, now)
		if err != nil {
			rejected[i] = err
			continue
		}
		if di.State != nil {
			next = di.State
		}
		d.Merge(di)
	}
	return next, d, rejected
}

// Results decided in place on the batch's copy give what deciding each on a copy of its
// own gives, rejected and unchanged ones included, and leave the stored state as it was.
func TestProcessDecidesResultsInPlaceAsOneByOne(t *testing.T) {
	retrying := stage("b", "a")
	retrying.Retries = 1
	spec := &sluicev1.PipelineSpec{Version: 1, Name: "web", Stages: []*sluicev1.StageSpec{
		stage("a"), retrying, stage("c", "a"), stage("d", "b", "c"),
	}}
	cur := Stored{State: NewRun("r1", spec, &sluicev1.SubmitRunRequest{Ref: "main"}, "", t0)}
	batches := [][]Input{
		{Start{}, started("a", 1), started("a", 1), passed("a", 1), passed("a", 1), started("a", 1)},
		{started("b", 1), Tick{}, failed("b", 1), started("c", 1), passed("c", 2), passed("c", 1)},
		{passed("b", 1), started("b", 2), passed("b", 2), passed("zzz", 1), passed("d", 1)},
		{started("d", 1), failed("d", 1), passed("d", 1), CancelIn{Reason: "late"}, passed("a", 1)},
	}
	p := DefaultPolicy()
	for n, ins := range batches {
		before := proto.Clone(cur.State)
		now := t0.Add(time.Duration(n+1) * time.Minute)
		want, wantD, wantRej := decideOneByOne(p, cur, ins, now)
		got, gotD, _, gotRej, err := p.decideBatch(cur, ins, now)
		if err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(cur.State, before) {
			t.Fatalf("batch %d changed the stored state it was given", n)
		}
		if !proto.Equal(got, want) {
			t.Fatalf("batch %d: in place\n%s\none by one\n%s", n, prototext.Format(got), prototext.Format(want))
		}
		if !slices.Equal(taskStages(gotD), taskStages(wantD)) || len(gotD.Cancels) != len(wantD.Cancels) || gotD.PurgeQueued != wantD.PurgeQueued {
			t.Fatalf("batch %d: in place dispatched %v (%d cancels), one by one %v (%d cancels)", n, taskStages(gotD), len(gotD.Cancels), taskStages(wantD), len(wantD.Cancels))
		}
		for i := range ins {
			if (gotRej[i] == nil) != (wantRej[i] == nil) {
				t.Fatalf("batch %d input %d: in place rejected with %v, one by one with %v", n, i, gotRej[i], wantRej[i])
			}
		}
		cur = Stored{State: got, Rev: cur.Rev + 1, Published: got.GetEventSeq() - 1}
	}
	if !cur.State.GetStatus().Terminal() {
		t.Fatalf("the run is %s after the batches; they should have taken it to its end", cur.State.GetStatus().Short())
	}
}
