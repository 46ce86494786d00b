package main

import (
	"bytes"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/sluice-ci/sluice/internal/golden"
	sluicev1 "github.com/sluice-ci/sluice/proto/sluice/v1"
)

var t0 = time.Date(2026, 3, 14, 9, 26, 53, 0, time.UTC)

func at(d time.Duration) *timestamppb.Timestamp { return timestamppb.New(t0.Add(d)) }

func sampleSpec() *sluicev1.PipelineSpec {
	return &sluicev1.PipelineSpec{Name: "hello", Stages: []*sluicev1.StageSpec{
		{Name: "lint", Kind: sluicev1.StageKind_STAGE_KIND_STATIC},
		{Name: "test", Kind: sluicev1.StageKind_STAGE_KIND_TEST},
		{Name: "deploy-gate", Kind: sluicev1.StageKind_STAGE_KIND_TRAFFIC_SHIFT},
	}}
}

func sampleEvents() []*sluicev1.Event {
	ev := func(d time.Duration, typ, stage string, attempt int32, msg string) *sluicev1.Event {
		return &sluicev1.Event{Id: "r1/1", Type: typ, Time: at(d), Pipeline: "hello", RunId: "r1", Stage: stage, Attempt: attempt, Message: msg, Ref: "main"}
	}
	return []*sluicev1.Event{
		ev(0, "run.submitted", "", 0, "3 stages, ref feature"),
		ev(1*time.Millisecond, "stage.queued", "lint", 1, "attempt 1"),
		ev(5*time.Millisecond, "stage.started", "lint", 1, "attempt 1 on ci-1"),
		ev(1200*time.Millisecond, "stage.passed", "lint", 1, "1.195s"),
		ev(1300*time.Millisecond, "stage.started", "test", 1, "attempt 1 on ci-2"),
		ev(2*time.Second, "stage.retrying", "test", 1, "exit status 1; attempt 2 in 1s"),
		ev(3*time.Second, "stage.failed", "test", 2, "exit status 1\nsecond line"),
		ev(3*time.Second, "stage.skipped", "deploy-gate", 0, "when: branch main (ref feature)"),
		ev(3*time.Second, "run.failed", "", 0, "1 of 3 stages failed"),
	}
}

func sampleRun() *sluicev1.RunState {
	return &sluicev1.RunState{
		Id: "r1", Pipeline: "hello", Spec: sampleSpec(), Status: sluicev1.RunStatus_RUN_STATUS_FAILED,
		Ref: "feature", SourceDigest: "sha256:44a6150cea21aa", CreatedAt: at(0), FinishedAt: at(3 * time.Second),
		Message: "1 of 3 stages failed",
		Stages: []*sluicev1.StageState{
			{Name: "lint", Status: sluicev1.StageStatus_STAGE_STATUS_PASSED, Attempt: 1, StartedAt: at(5 * time.Millisecond), FinishedAt: at(1200 * time.Millisecond), Message: "1 step passed"},
			{Name: "test", Status: sluicev1.StageStatus_STAGE_STATUS_FAILED, Attempt: 2, StartedAt: at(2 * time.Second), FinishedAt: at(3 * time.Second), Message: "exit status 1"},
			{Name: "deploy-gate", Status: sluicev1.StageStatus_STAGE_STATUS_SKIPPED, Message: "when: branch main (ref feature)"},
		},
	}
}

func TestProgressGolden(t *testing.T) {
	var b bytes.Buffer
	p := newProgress(&b, sampleSpec())
	for _, ev := range sampleEvents() {
		p.event(ev)
	}
	golden.Check(t, filepath.Join("testdata", "golden", "progress.txt"), b.Bytes())
}

func TestEventLinesGolden(t *testing.T) {
	var b bytes.Buffer
	for _, ev := range sampleEvents() {
		writeEventLine(&b, ev)
	}
	golden.Check(t, filepath.Join("testdata", "golden", "events.txt"), b.Bytes())
}

func TestEventJSONGolden(t *testing.T) {
	var b bytes.Buffer
	for _, ev := range sampleEvents()[:4] {
		if err := writeJSON(&b, ev); err != nil {
			t.Fatal(err)
		}
	}
	golden.Check(t, filepath.Join("testdata", "golden", "events.jsonl"), b.Bytes())
}

func TestRunShowGolden(t *testing.T) {
	var b bytes.Buffer
	if err := writeRun(&app{stdout: &b}, sampleRun()); err != nil {
		t.Fatal(err)
	}
	golden.Check(t, filepath.Join("testdata", "golden", "runs-show.txt"), b.Bytes())
}

func TestStageCounts(t *testing.T) {
	if got, want := stageCounts(sampleRun()), "3 stages: 1 passed, 1 failed, 1 skipped"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestFmtDuration(t *testing.T) {
	tests := []struct {
		in   time.Duration
		want string
	}{
		{-time.Second, "-"},
		{0, "0s"},
		{1234567 * time.Nanosecond, "1ms"},
		{850 * time.Millisecond, "850ms"},
		{1249 * time.Millisecond, "1.2s"},
		{62500 * time.Millisecond, "1m3s"},
	}
	for _, tt := range tests {
		if got := fmtDuration(tt.in); got != tt.want {
			t.Errorf("fmtDuration(%s) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
