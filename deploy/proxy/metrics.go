package proxy

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Prometheus metric names the router exports on its admin address; the prometheus provider's
// default queries use them.
const (
	MetricRequests = "sluice_router_requests_total"
	MetricErrors   = "sluice_router_responses_5xx_total"
	MetricEmpty    = "sluice_router_empty_responses_total"
	MetricDuration = "sluice_router_request_duration_seconds"
	MetricWeight   = "sluice_router_canary_weight"
)

// DurationBuckets are the latency histogram's upper bounds in seconds.
var DurationBuckets = []float64{.001, .0025, .005, .01, .025, .05, .075, .1, .15, .2, .3, .5, .75, 1, 2.5, 5, 10}

// registerMetrics exports the same counters the admin API serves (read at scrape time, so
// the two never disagree) and a latency histogram per backend.
func (p *Proxy) registerMetrics() error {
	hist := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    MetricDuration,
		Help:    "Time from receiving a request to the end of its proxied response, per backend.",
		Buckets: DurationBuckets,
	}, []string{"backend", "role"})
	cs := []prometheus.Collector{
		hist,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: MetricWeight,
			Help: "Share of requests, in percent, sent to the canary backend.",
		}, func() float64 { return float64(p.Weight()) }),
	}
	for _, b := range []*backend{p.stable, p.canary} {
		labels := prometheus.Labels{"backend": b.name, "role": b.role}
		b.histogram = hist.With(labels)
		cs = append(cs,
			prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name: MetricRequests, Help: "Requests proxied, per backend.", ConstLabels: labels,
			}, func() float64 { return float64(b.requests.Load()) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name: MetricErrors, Help: "Responses with a 5xx status (or an unreachable backend), per backend.", ConstLabels: labels,
			}, func() float64 { return float64(b.errors5xx.Load()) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name: MetricEmpty, Help: "Responses without a body or with the body null, per backend.", ConstLabels: labels,
			}, func() float64 { return float64(b.empty.Load()) }),
		)
	}
	for _, c := range cs {
		if err := p.registry.Register(c); err != nil {
			return err
		}
	}
	return nil
}
