package coordinator

import (
	"context"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluice-ci/sluice/coordinator/decide"
	sluicev1 "github.com/sluice-ci/sluice/proto/sluice/v1"
)

// Metric names the coordinator exports on /metrics; deploy/grafana/sluice.json uses them.
const (
	MetricStages        = "sluice_stages_total"
	MetricStageDuration = "sluice_stage_duration_seconds"
	MetricStageRetries  = "sluice_stage_retries_total"
	MetricRuns          = "sluice_runs_total"
	MetricRunsActive    = "sluice_runs_active"
	MetricDispatch      = "sluice_dispatch_latency_seconds"
	MetricRejected      = "sluice_results_rejected_total"
	MetricQueueDepth    = "sluice_queue_depth"
	MetricQueueInFlight = "sluice_queue_in_flight"
	MetricRedelivered   = "sluice_queue_redelivered"
	MetricCanaryWeight  = "sluice_rollout_canary_weight_ratio"
	MetricVerdicts      = "sluice_rollout_verdicts_total"
	MetricRollbacks     = "sluice_rollout_rollbacks_total"
)

var (
	// stageBuckets span a no-op stage to a long test suite.
	stageBuckets = []float64{.01, .05, .1, .5, 1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600}
	// dispatchBuckets span a quiet fleet (milliseconds) to a saturated one (minutes queued).
	dispatchBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 5, 30, 120, 600}
)

// metrics counts what the decisions this coordinator stored did, from the events they
// emitted: a decision is counted by the one coordinator whose compare-and-swap won it.
// Gauges (active runs, queues, canary weights) are read when scraped.
type metrics struct {
	reg           *prometheus.Registry
	stages        *prometheus.CounterVec
	stageDuration *prometheus.HistogramVec
	retries       *prometheus.CounterVec
	runs          *prometheus.CounterVec
	dispatch      *prometheus.HistogramVec
	verdicts      *prometheus.CounterVec
	rollbacks     prometheus.Counter
}

func newMetrics(c *Coordinator) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		stages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: MetricStages, Help: "Stages that ended, by kind and outcome (passed, failed, cancelled, skipped).",
		}, []string{"kind", "outcome"}),
		stageDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: MetricStageDuration, Help: "Time from a stage's start to its end, by kind and outcome.", Buckets: stageBuckets,
		}, []string{"kind", "outcome"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: MetricStageRetries, Help: "Failed attempts retried, by kind.",
		}, []string{"kind"}),
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: MetricRuns, Help: "Runs that ended, by outcome (passed, failed, cancelled).",
		}, []string{"outcome"}),
		dispatch: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    MetricDispatch,
			Help:    "Time from a stage's dispatch (the decision that queued it) to its start reaching the coordinator, by kind and pool: queueing plus the bus.",
			Buckets: dispatchBuckets,
		}, []string{"kind", "pool"}),
		verdicts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: MetricVerdicts, Help: "Canary analysis verdicts, by verdict (healthy, unhealthy, inconclusive).",
		}, []string{"verdict"}),
		rollbacks: prometheus.NewCounter(prometheus.CounterOpts{
			Name: MetricRollbacks, Help: "Rollouts rolled back, automatically or on request.",
		}),
	}
	m.reg.MustRegister(m.stages, m.stageDuration, m.retries, m.runs, m.dispatch, m.verdicts, m.rollbacks,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: MetricRunsActive, Help: "Runs not finished, as this coordinator sees them."},
			func() float64 { return float64(c.cache.activeCount()) }),
		&stateCollector{c: c},
	)
	for reason, n := range map[string]func() int64{
		"forged": c.rejected.forged.Load, "mismatched": c.rejected.mismatched.Load, "undecodable": c.rejected.undecodable.Load,
	} {
		m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: MetricRejected, Help: "Results dropped unread: forged (no valid proof), mismatched (subject and payload disagree), undecodable.",
			ConstLabels: prometheus.Labels{"reason": reason},
		}, func() float64 { return float64(n()) }))
	}
	return m
}

// record counts the events of a decision stored on st at now.
func (m *metrics) record(st *sluicev1.RunState, d decide.Decision, now time.Time) {
	for _, ev := range d.Emitted {
		typ := ev.GetType()
		switch {
		case strings.HasPrefix(typ, "run."):
			switch outcome := strings.TrimPrefix(typ, "run."); outcome {
			case "passed", "failed", "cancelled":
				m.runs.WithLabelValues(outcome).Inc()
			}
		case typ == "analysis.verdict":
			m.verdicts.WithLabelValues(verdictName(ev)).Inc()
		case typ == "rollout.rolled_back":
			m.rollbacks.Inc()
		case strings.HasPrefix(typ, "stage."):
			m.stage(st, ev, now)
		}
	}
}

func (m *metrics) stage(st *sluicev1.RunState, ev *sluicev1.Event, now time.Time) {
	s, spec := stageOf(st, ev.GetStage())
	if s == nil {
		return
	}
	kind := spec.GetKind().Slug()
	switch outcome := strings.TrimPrefix(ev.GetType(), "stage."); outcome {
	case "started":
		if q := s.GetQueuedAt(); q != nil {
			m.dispatch.WithLabelValues(kind, spec.GetPool()).Observe(now.Sub(q.AsTime()).Seconds())
		}
	case "retrying":
		m.retries.WithLabelValues(kind).Inc()
	case "passed", "failed", "cancelled", "skipped":
		m.stages.WithLabelValues(kind, outcome).Inc()
		if start, end := s.GetStartedAt(), s.GetFinishedAt(); start != nil && end != nil && outcome != "skipped" {
			m.stageDuration.WithLabelValues(kind, outcome).Observe(end.AsTime().Sub(start.AsTime()).Seconds())
		}
	}
}

func stageOf(st *sluicev1.RunState, name string) (*sluicev1.StageState, *sluicev1.StageSpec) {
	for i, s := range st.GetStages() {
		if s.GetName() == name {
			return s, st.GetSpec().GetStages()[i]
		}
	}
	return nil, nil
}

// verdictName is an analysis.verdict event's outcome: its message starts with it.
func verdictName(ev *sluicev1.Event) string {
	if v, _, ok := strings.Cut(ev.GetMessage(), " "); ok {
		switch v {
		case "healthy", "unhealthy", "inconclusive":
			return v
		}
	}
	return "unknown"
}

// stateCollector reads, when scraped, what the bus and the active runs say now: each worker
// consumer's queue, and each rollout in progress's canary weight.
type stateCollector struct{ c *Coordinator }

var (
	descDepth  = prometheus.NewDesc(MetricQueueDepth, "Tasks queued for a kind and pool that no worker holds yet.", []string{"kind", "pool"}, nil)
	descInFly  = prometheus.NewDesc(MetricQueueInFlight, "Tasks of a kind and pool that workers hold and have not acknowledged.", []string{"kind", "pool"}, nil)
	descRedel  = prometheus.NewDesc(MetricRedelivered, "Tasks of a kind and pool delivered more than once and not yet acknowledged.", []string{"kind", "pool"}, nil)
	descCanary = prometheus.NewDesc(MetricCanaryWeight, "Share of traffic on the canary of a rollout in progress (0 to 1).",
		[]string{"pipeline", "run", "stage"}, nil)
)

// scrapeTimeout bounds the consumer lookups of one scrape.
const scrapeTimeout = 2 * time.Second

func (sc *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descDepth
	ch <- descInFly
	ch <- descRedel
	ch <- descCanary
}

func (sc *stateCollector) Collect(ch chan<- prometheus.Metric) {
	c := sc.c
	for _, st := range c.cache.snapshot() {
		for _, s := range st.GetStages() {
			if ro := s.GetRollout(); ro != nil && !s.GetStatus().Terminal() {
				ch <- prometheus.MustNewConstMetric(descCanary, prometheus.GaugeValue, float64(ro.GetWeight())/100, st.GetPipeline(), st.GetId(), s.GetName())
			}
		}
	}
	if c.tasks == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	infos := c.tasks.ListConsumers(ctx)
	for info := range infos.Info() {
		kind, pool, ok := c.cfg.Names.ParseTaskFilter(info.Config.FilterSubject)
		if !ok {
			continue
		}
		ch <- prometheus.MustNewConstMetric(descDepth, prometheus.GaugeValue, float64(info.NumPending), kind, pool)
		ch <- prometheus.MustNewConstMetric(descInFly, prometheus.GaugeValue, float64(info.NumAckPending), kind, pool)
		ch <- prometheus.MustNewConstMetric(descRedel, prometheus.GaugeValue, float64(info.NumRedelivered), kind, pool)
	}
	if err := infos.Err(); err != nil {
		c.log.Warn("metrics: list the task consumers", "err", err)
	}
}
