package bench_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/sluice-ci/sluice/internal/bench"
	"github.com/sluice-ci/sluice/internal/bus"
)

// TestRunReportsEveryNumber runs every phase, small, on an embedded server and checks that
// each number the README's table and the targets read was measured.
func TestRunReportsEveryNumber(t *testing.T) {
	rep, err := bench.Run(t.Context(), bench.Options{Runs: 70, InFlight: 10, Sequential: 5, Finished: 500, BigRun: 50, Progress: testWriter{t}})
	if err != nil {
		t.Fatal(err)
	}
	data, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(data, &got); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"floor_publish_p50_us", "floor_roundtrip_p50_us", "dispatch_p50_us", "dispatch_p99_us",
		"stages_per_s", "chain_stages_per_s", "dag7_p50_us", "dag7_p99_us", "overhead_x_floor", "exec_run_p50_us", "noop_run_p50_us",
		"coordinator_ready_ms", "big_run_s", "beside_big_run_p50_us", "dag7_floor_roundtrip_p50_us",
		"protocol_stages_per_s", "protocol_chain_stages_per_s", "protocol_dag7_p50_us"} {
		v, ok := got[key].(float64)
		if !ok || v <= 0 {
			t.Errorf("%s = %v, want a positive number", key, got[key])
		}
	}
	// The ratio is to the floor timed between the chains, not the one taken before the runs.
	if want := rep.DAG7P50Us / 7 / rep.DAG7FloorRoundtripP50Us; rep.OverheadXFloor != want {
		t.Errorf("overhead_x_floor = %v, want dag7 p50 / 7 / the floor beside it = %v", rep.OverheadXFloor, want)
	}
	if _, ok := got["exec_overhead_us"].(float64); !ok {
		t.Errorf("exec_overhead_us missing: %v", got)
	}
	if rep.FinishedRuns != 500 || rep.BigRunStages != 50 || rep.BesideBigRunRuns < 1 {
		t.Errorf("finished runs %d, big run of %d stages with %d runs beside it; want 500, 50 and at least one",
			rep.FinishedRuns, rep.BigRunStages, rep.BesideBigRunRuns)
	}
	// 10 warm-up runs, 70 1-stage runs, 10 chains, 5 DAGs, 5+5 exec runs, the big run and
	// those beside it; the finished runs were never run.
	if want := 10 + 70 + 10 + 5 + 10 + 1 + rep.BesideBigRunRuns; rep.Runs != want {
		t.Errorf("runs = %d, want %d", rep.Runs, want)
	}
	if _, err := rep.Value("no_such_key"); err == nil {
		t.Error("Value of an unknown key did not fail")
	}
}

// TestRunFailsWhenTheCoordinatorDies: a coordinator that ends on its own fails the benchmark
// at once, with that said, instead of every run waiting out its timeout.
func TestRunFailsWhenTheCoordinatorDies(t *testing.T) {
	_, err := bench.Run(t.Context(), bench.Options{Runs: 10, Sequential: 1, Coordinator: func(context.Context, string, string, bus.Names, *slog.Logger) (bench.Coordinator, error) {
		return deadCoordinator{}, nil
	}})
	if err == nil || !strings.Contains(err.Error(), "coordinator stopped") {
		t.Fatalf("Run = %v, want the coordinator's end reported", err)
	}
}

type deadCoordinator struct{}

func (deadCoordinator) RSS() (int64, error) { return 0, errors.New("dead") }
func (deadCoordinator) Stop() error         { return nil }
func (deadCoordinator) Done() <-chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}
