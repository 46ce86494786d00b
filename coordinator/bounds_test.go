package coordinator

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-ci/sluice/coordinator/decide"
	"github.com/sluice-ci/sluice/internal/bus"
	"github.com/sluice-ci/sluice/internal/bus/bustest"
	sluicev1 "github.com/sluice-ci/sluice/proto/sluice/v1"
)

// TestPlannerSmallRunIsNotStuckBehindAHugeOne: a run of 100 tasks submitted first holds only
// its in-flight bound in the queue, so a small run submitted after it passes while most of
// the big one still waits.
func TestPlannerSmallRunIsNotStuckBehindAHugeOne(t *testing.T) {
	env := bustest.Start(t, bus.Config{})
	startCoordinator(t, env, func(c *Config) { c.Policy = decide.DefaultPolicy(); c.Policy.MaxRunTasks = 8 })
	var mu sync.Mutex
	finished := 0
	// One worker slot, answering each task after a pause, in the order the queue gives them.
	startWorker(t, env, func(task *sluicev1.Task) *sluicev1.Result {
		time.Sleep(20 * time.Millisecond)
		if task.GetStage() == "big" {
			mu.Lock()
			finished++
			mu.Unlock()
		}
		return pass(task)
	})
	big := stage("big")
	big.Shards = 100
	bigRun := submit(t, env, "main", big)
	small := submit(t, env, "main", stage("a"), stage("b", "a"))
	waitRun(t, env, small.GetId(), sluicev1.RunStatus_RUN_STATUS_PASSED)
	mu.Lock()
	done := finished
	mu.Unlock()
	if done > 50 {
		t.Fatalf("the small run passed only after %d of the big run's 100 tasks: it waited behind them", done)
	}
	waitRun(t, env, bigRun.GetId(), sluicev1.RunStatus_RUN_STATUS_PASSED)
}

// TestPlannerARunThatOutgrowsItsStateFailsAlone: a run whose results outgrow what the server
// stores fails with the sizes, and a run beside it passes.
func TestPlannerARunThatOutgrowsItsStateFailsAlone(t *testing.T) {
	env := bustest.Start(t, bus.Config{})
	startCoordinator(t, env, func(c *Config) { c.Policy = decide.DefaultPolicy(); c.Policy.MaxStateBytes = 24 << 10 })
	startWorker(t, env, func(task *sluicev1.Task) *sluicev1.Result {
		r := pass(task)
		if strings.HasPrefix(task.GetStage(), "noisy") {
			r.Message = strings.Repeat("so much to say ", 60)
		}
		return r
	})
	var noisy []*sluicev1.StageSpec
	for i := range 60 {
		noisy = append(noisy, stage(fmt.Sprintf("noisy%d", i)))
	}
	bad := submit(t, env, "main", noisy...)
	good := submit(t, env, "main", stage("a"), stage("b", "a"))
	final := waitRun(t, env, bad.GetId(), sluicev1.RunStatus_RUN_STATUS_FAILED)
	if !strings.Contains(final.GetMessage(), "above the 24576 bytes") {
		t.Fatalf("the big run failed with %q, want the sizes", final.GetMessage())
	}
	waitRun(t, env, good.GetId(), sluicev1.RunStatus_RUN_STATUS_PASSED)
}
