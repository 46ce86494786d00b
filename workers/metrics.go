package workers

import (
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	sluicev1 "github.com/sluice-ci/sluice/proto/sluice/v1"
)

// Metric names a worker exports (`sluice worker --metrics ADDR`); deploy/grafana/sluice.json
// uses them. Every series carries the worker's pool.
const (
	MetricTasks        = "sluice_worker_tasks_total"
	MetricTaskDuration = "sluice_worker_task_duration_seconds"
	MetricInFlight     = "sluice_worker_tasks_in_flight"
	MetricSlots        = "sluice_worker_slots"
	MetricTaskWait     = "sluice_worker_task_wait_seconds"
)

var (
	taskBuckets = []float64{.01, .05, .1, .5, 1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600}
	waitBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 5, 30, 120, 600}
)

// workerMetrics is what a worker's tasks did; nil when the worker has no registry.
type workerMetrics struct {
	tasks    *prometheus.CounterVec
	duration *prometheus.HistogramVec
	inFlight *prometheus.GaugeVec
	wait     *prometheus.HistogramVec
}

func newWorkerMetrics(reg prometheus.Registerer, c Config) (*workerMetrics, error) {
	if reg == nil {
		return nil, nil
	}
	pool := prometheus.Labels{"pool": c.Pool}
	m := &workerMetrics{
		tasks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: MetricTasks, Help: "Tasks this worker finished, by kind and outcome (passed, failed, error, cancelled, timeout).", ConstLabels: pool,
		}, []string{"kind", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: MetricTaskDuration, Help: "Time from taking a task to its final result, by kind and outcome.", ConstLabels: pool, Buckets: taskBuckets,
		}, []string{"kind", "outcome"}),
		inFlight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: MetricInFlight, Help: "Tasks this worker holds now, by kind.", ConstLabels: pool,
		}, []string{"kind"}),
		wait: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:        MetricTaskWait,
			Help:        "Time from the coordinator's dispatch of a task to this worker taking it, by kind (the two hosts' clocks apart).",
			ConstLabels: pool, Buckets: waitBuckets,
		}, []string{"kind"}),
	}
	slots := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: MetricSlots, Help: "Tasks this worker runs at once, by kind.", ConstLabels: pool,
	}, []string{"kind"})
	// Workers of one process (one per kind with --auth) share a registry: the second one
	// takes the collectors the first registered and adds its kinds' series.
	var errs [5]error
	m.tasks, errs[0] = register(reg, m.tasks)
	m.duration, errs[1] = register(reg, m.duration)
	m.inFlight, errs[2] = register(reg, m.inFlight)
	m.wait, errs[3] = register(reg, m.wait)
	slots, errs[4] = register(reg, slots)
	if err := errors.Join(errs[:]...); err != nil {
		return nil, fmt.Errorf("%w: metrics: %w", ErrBadConfig, err)
	}
	for _, k := range c.Kinds {
		slots.WithLabelValues(k.Slug()).Set(float64(c.Concurrency))
		m.inFlight.WithLabelValues(k.Slug())
	}
	return m, nil
}

// register registers col, or returns the collector of the same name registered before.
func register[C prometheus.Collector](reg prometheus.Registerer, col C) (C, error) {
	err := reg.Register(col)
	var dup prometheus.AlreadyRegisteredError
	if errors.As(err, &dup) {
		if existing, ok := dup.ExistingCollector.(C); ok {
			return existing, nil
		}
	}
	return col, err
}

// took records a task taken; the returned func records its end with res (nil: handed back).
func (m *workerMetrics) took(task *sluicev1.Task) func(res *sluicev1.Result) {
	if m == nil {
		return func(*sluicev1.Result) {}
	}
	kind := task.GetKind().Slug()
	start := time.Now()
	if at := task.GetDispatchedAt(); at != nil {
		m.wait.WithLabelValues(kind).Observe(max(0, start.Sub(at.AsTime()).Seconds()))
	}
	g := m.inFlight.WithLabelValues(kind)
	g.Inc()
	return func(res *sluicev1.Result) {
		// Counted before it leaves the in-flight gauge, so a scrape never misses it.
		if res != nil {
			outcome := res.GetOutcome().Short()
			m.tasks.WithLabelValues(kind, outcome).Inc()
			m.duration.WithLabelValues(kind, outcome).Observe(time.Since(start).Seconds())
		}
		g.Dec()
	}
}
