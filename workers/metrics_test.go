package workers

import (
	"errors"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/sluice-ci/sluice/internal/version"
	sluicev1 "github.com/sluice-ci/sluice/proto/sluice/v1"
)

// gathered is every sample of reg as "name,label=value,..." -> value (a histogram's count).
func gathered(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			key := mf.GetName()
			for _, l := range m.GetLabel() {
				key += "," + l.GetName() + "=" + l.GetValue()
			}
			switch {
			case m.GetCounter() != nil:
				got[key] = m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				got[key] = m.GetGauge().GetValue()
			case m.GetHistogram() != nil:
				got[key] = float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return got
}

// A worker's metrics count its tasks by kind and outcome, time them, and show its slots.
func TestMetricsCountTasksByKindAndOutcome(t *testing.T) {
	h := newHarness(t)
	reg := prometheus.NewRegistry()
	for run, step := range map[string]string{"r1": "true", "r2": "exit 3"} {
		task := newTask(run, step)
		task.DispatchedAt = timestamppb.Now()
		h.publish(t, task)
	}
	h.start(t, Config{ID: "w1", Metrics: reg, Concurrency: 2})
	h.final(t, "r1")
	h.final(t, "r2")
	var got map[string]float64
	waitFor(t, "both tasks counted", func() bool {
		got = gathered(t, reg)
		return got[MetricTasks+",kind=static,outcome=passed,pool=default"]+got[MetricTasks+",kind=static,outcome=failed,pool=default"] == 2 &&
			got[MetricInFlight+",kind=static,pool=default"] == 0
	})
	for key, want := range map[string]float64{
		MetricTasks + ",kind=static,outcome=passed,pool=default":        1,
		MetricTasks + ",kind=static,outcome=failed,pool=default":        1,
		MetricTaskDuration + ",kind=static,outcome=passed,pool=default": 1,
		MetricSlots + ",kind=static,pool=default":                       2,
		MetricTaskWait + ",kind=static,pool=default":                    2,
		MetricInFlight + ",kind=static,pool=default":                    0,
	} {
		if got[key] != want {
			t.Errorf("%s = %v, want %v (all: %v)", key, got[key], want, got)
		}
	}
	if problems, err := testutil.GatherAndLint(reg); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", problems, err)
	}
}

// With --auth a process runs a worker per kind on one registry: the second takes the
// collectors the first registered and adds its own kinds.
func TestMetricsOfWorkersSharingARegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	for _, k := range []sluicev1.StageKind{sluicev1.StageKind_STAGE_KIND_E2E, sluicev1.StageKind_STAGE_KIND_LOAD} {
		if _, err := newWorkerMetrics(reg, Config{Kinds: []sluicev1.StageKind{k}, Pool: "big", Concurrency: 3}); err != nil {
			t.Fatalf("worker of %s: %v", k.Slug(), err)
		}
	}
	got := gathered(t, reg)
	for _, key := range []string{MetricSlots + ",kind=e2e,pool=big", MetricSlots + ",kind=load,pool=big"} {
		if got[key] != 3 {
			t.Errorf("%s = %v, want 3 (all: %v)", key, got[key], got)
		}
	}
}

// A worker announces itself in the workers bucket while it runs (its kind, pool, slots and
// tasks in flight) and removes itself when it stops.
func TestHeartbeatWhileRunning(t *testing.T) {
	h := newHarness(t)
	w := h.start(t, Config{ID: "w1", Concurrency: 3})
	kv, err := h.env.JS.KeyValue(t.Context(), h.names.WorkersBucket())
	if err != nil {
		t.Fatal(err)
	}
	// Without credentials the worker is known by its id.
	key := h.names.WorkerKey("static", "w1", "w1")
	var info sluicev1.WorkerInfo
	waitFor(t, "the heartbeat", func() bool {
		e, err := kv.Get(t.Context(), key)
		return err == nil && proto.Unmarshal(e.Value(), &info) == nil
	})
	if info.GetId() != "w1" || info.GetKind() != static || info.GetPool() != DefaultPool || info.GetSlots() != 3 || info.GetVersion() != version.String() {
		t.Errorf("heartbeat %v", &info)
	}
	w.stop(t)
	if _, err := kv.Get(t.Context(), key); !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Errorf("after the worker stopped, its heartbeat: %v; want it gone", err)
	}
}
