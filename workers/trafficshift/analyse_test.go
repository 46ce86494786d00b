package trafficshift

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/sluice-ci/sluice/deploy"
	"github.com/sluice-ci/sluice/deploy/metrics"
	sluicev1 "github.com/sluice-ci/sluice/proto/sluice/v1"
	"github.com/sluice-ci/sluice/workers"
)

// scripted is a metrics provider (an interface of ours) that replays one measurement per
// interval: true for a canary failing half its requests, false for a healthy one.
type scripted struct {
	bad []bool
	n   int
}

func (s *scripted) Measure(context.Context, time.Duration) (metrics.Pair, error) {
	bad := s.n < len(s.bad) && s.bad[s.n]
	s.n++
	rate := 0.0
	if bad {
		rate = 0.5
	}
	obs := func(r float64) metrics.Observation {
		return metrics.Observation{Values: map[string]float64{metrics.Requests: 100, metrics.ErrorRate: r}}
	}
	return metrics.Pair{Stable: obs(0), Canary: obs(rate)}, nil
}

func TestAnalyseFailureLimit(t *testing.T) {
	tests := []struct {
		name          string
		limit         int32
		bad           []bool
		want          sluicev1.Outcome
		wantIntervals int
	}{
		{"limit 1: the first unhealthy interval decides", 1, []bool{true}, sluicev1.Outcome_OUTCOME_FAILED, 1},
		{"limit 2: one noisy interval is cleared", 2, []bool{true, false}, sluicev1.Outcome_OUTCOME_PASSED, 2},
		{"limit 2: two in a row are confirmed", 2, []bool{true, true}, sluicev1.Outcome_OUTCOME_FAILED, 2},
		{"limit 2: not consecutive", 2, []bool{false, true, false, true, false}, sluicev1.Outcome_OUTCOME_PASSED, 5},
		{"healthy", 2, []bool{false, false, false, false, false}, sluicev1.Outcome_OUTCOME_PASSED, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := &sluicev1.RolloutSpec{
				Router: &sluicev1.RouterSpec{Type: "builtin", Admin: "127.0.0.1:1"},
				Analysis: &sluicev1.AnalysisSpec{
					Interval: durationpb.New(time.Millisecond), FailureLimit: tt.limit,
					Metrics: []*sluicev1.MetricSpec{{Name: metrics.ErrorRate, Max: proto.Float64(0.01)}},
				},
			}
			e, err := deploy.New(rolloutOf(spec), deploy.Options{})
			if err != nil {
				t.Fatal(err)
			}
			p := &scripted{bad: tt.bad}
			e.Provider = p
			task := &workers.Task{Task: &sluicev1.Task{Spec: &sluicev1.StageSpec{Rollout: spec}}, Log: io.Discard, Logger: slog.New(slog.DiscardHandler)}
			// The scripted provider answers at once, so the loop may measure more (healthy)
			// intervals than scripted before the few-millisecond pause ends.
			pause := time.Duration(len(tt.bad)) * time.Millisecond
			res := analyse(t.Context(), task, e, &sluicev1.RolloutTask{Weight: 10, Duration: durationpb.New(pause)})
			if res.GetOutcome() != tt.want {
				t.Fatalf("outcome %v (%s), want %v", res.GetOutcome(), res.GetMessage(), tt.want)
			}
			if p.n < tt.wantIntervals {
				t.Fatalf("%d intervals measured, want at least %d", p.n, tt.wantIntervals)
			}
			if tt.want == sluicev1.Outcome_OUTCOME_FAILED && p.n != tt.wantIntervals {
				t.Fatalf("decided after %d intervals, want %d", p.n, tt.wantIntervals)
			}
		})
	}
}
