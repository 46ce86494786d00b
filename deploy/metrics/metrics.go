// Package metrics measures the stable and canary backends of a rollout over one analysis
// interval. Providers: Builtin reads a `sluice router`'s stats, Prometheus queries a
// Prometheus server's HTTP API.
package metrics

import (
	"math"
	"slices"
	"time"
)

// Metric names the builtin provider computes and the prometheus provider has default queries
// for (over the metrics `sluice router` exports). Rates are fractions (0.01 = 1%), latencies
// are seconds.
const (
	Requests         = "requests"
	ErrorRate        = "error_rate"
	NullResponseRate = "null_response_rate"
	LatencyMean      = "latency_mean"
	LatencyP50       = "latency_p50"
	LatencyP90       = "latency_p90"
	LatencyP95       = "latency_p95"
	LatencyP99       = "latency_p99"
)

// Known lists the names above.
var Known = []string{Requests, ErrorRate, NullResponseRate, LatencyMean, LatencyP50, LatencyP90, LatencyP95, LatencyP99}

// Observation is what a provider measured on one backend over one interval.
type Observation struct {
	Backend string    `json:"backend"`
	Start   time.Time `json:"start"`
	End     time.Time `json:"end"`
	// Values maps a metric name to its value over the interval. A metric without data (a rate
	// over zero requests, an empty query result) is absent, never NaN.
	Values map[string]float64 `json:"values"`
	// Latencies are request durations in seconds, the samples a rank test compares.
	Latencies []float64 `json:"-"`
}

// Value returns the named metric and whether it had data.
func (o Observation) Value(name string) (float64, bool) {
	v, ok := o.Values[name]
	return v, ok
}

// Pair is both backends over the same interval.
type Pair struct {
	Stable Observation `json:"stable"`
	Canary Observation `json:"canary"`
}

// Quantile is the q-quantile (0 <= q <= 1) of sorted values by linear interpolation between
// closest ranks; 0 for no values.
func Quantile(sorted []float64, q float64) float64 {
	switch n := len(sorted); {
	case n == 0:
		return 0
	case n == 1:
		return sorted[0]
	default:
		pos := q * float64(n-1)
		lo := int(math.Floor(pos))
		if lo >= n-1 {
			return sorted[n-1]
		}
		frac := pos - float64(lo)
		return sorted[lo] + frac*(sorted[lo+1]-sorted[lo])
	}
}

// latencyValues adds the latency metrics of samples to values; none without samples.
func latencyValues(values map[string]float64, samples []float64) {
	if len(samples) == 0 {
		return
	}
	s := slices.Clone(samples)
	slices.Sort(s)
	var sum float64
	for _, v := range s {
		sum += v
	}
	values[LatencyMean] = sum / float64(len(s))
	values[LatencyP50] = Quantile(s, 0.50)
	values[LatencyP90] = Quantile(s, 0.90)
	values[LatencyP95] = Quantile(s, 0.95)
	values[LatencyP99] = Quantile(s, 0.99)
}

// finite drops a NaN or infinite value, which JSON cannot carry and no judge can compare.
func finite(values map[string]float64, name string, v float64) {
	if !math.IsNaN(v) && !math.IsInf(v, 0) {
		values[name] = v
	}
}
