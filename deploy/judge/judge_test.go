package judge

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/sluice-ci/sluice/deploy/metrics"
)

func f(v float64) *float64 { return &v }

// seedRules are the seeds' rollback rules: error rate over 1.5x the baseline, latency over 2x,
// more than 1% null responses.
var seedRules = []Rule{
	{Metric: metrics.ErrorRate, MaxRatioToBaseline: f(1.5)},
	{Metric: metrics.LatencyP95, MaxRatioToBaseline: f(2.0)},
	{Metric: metrics.NullResponseRate, Max: f(0.01)},
}

func obs(values map[string]float64) metrics.Observation {
	return metrics.Observation{Values: values}
}

func TestThresholds(t *testing.T) {
	stable := map[string]float64{metrics.Requests: 1000, metrics.ErrorRate: 0.01, metrics.LatencyP95: 0.100, metrics.NullResponseRate: 0.001}
	with := func(kv ...any) map[string]float64 {
		m := map[string]float64{}
		for k, v := range stable {
			m[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			if v, ok := kv[i+1].(float64); ok {
				m[kv[i].(string)] = v
			} else {
				delete(m, kv[i].(string))
			}
		}
		return m
	}
	tests := []struct {
		name        string
		rules       []Rule
		stable      map[string]float64
		canary      map[string]float64
		minRequests int
		want        Outcome
		// wantChecks is each check's outcome in order.
		wantChecks []Outcome
	}{
		{"same as stable", seedRules, stable, stable, 0, Healthy, []Outcome{Healthy, Healthy, Healthy}},
		{"error rate 1.2x", seedRules, stable, with(metrics.ErrorRate, 0.012), 0, Healthy, []Outcome{Healthy, Healthy, Healthy}},
		{"error rate exactly 1.5x passes", seedRules, stable, with(metrics.ErrorRate, 0.015), 0, Healthy, []Outcome{Healthy, Healthy, Healthy}},
		{"error rate 5x", seedRules, stable, with(metrics.ErrorRate, 0.05), 0, Unhealthy, []Outcome{Unhealthy, Healthy, Healthy}},
		{"latency 1.9x", seedRules, stable, with(metrics.LatencyP95, 0.19), 0, Healthy, []Outcome{Healthy, Healthy, Healthy}},
		{"latency 3x", seedRules, stable, with(metrics.LatencyP95, 0.3), 0, Unhealthy, []Outcome{Healthy, Unhealthy, Healthy}},
		{"null responses 1% passes", seedRules, stable, with(metrics.NullResponseRate, 0.01), 0, Healthy, []Outcome{Healthy, Healthy, Healthy}},
		{"null responses 2%", seedRules, stable, with(metrics.NullResponseRate, 0.02), 0, Unhealthy, []Outcome{Healthy, Healthy, Unhealthy}},
		{"every rule broken", seedRules, stable, with(metrics.ErrorRate, 0.2, metrics.LatencyP95, 1.0, metrics.NullResponseRate, 0.5), 0, Unhealthy, []Outcome{Unhealthy, Unhealthy, Unhealthy}},
		{"zero baseline, zero canary", seedRules[:1], with(metrics.ErrorRate, 0.0), with(metrics.ErrorRate, 0.0), 0, Healthy, []Outcome{Healthy}},
		{"zero baseline, canary errors", seedRules[:1], with(metrics.ErrorRate, 0.0), with(metrics.ErrorRate, 0.01), 0, Unhealthy, []Outcome{Unhealthy}},
		{"no canary data", seedRules, stable, with(metrics.ErrorRate, nil), 0, Inconclusive, []Outcome{Inconclusive, Healthy, Healthy}},
		{"no baseline data", seedRules[:1], with(metrics.ErrorRate, nil), stable, 0, Inconclusive, []Outcome{Inconclusive}},
		{"unhealthy beats inconclusive", seedRules, stable, with(metrics.ErrorRate, nil, metrics.NullResponseRate, 0.05), 0, Unhealthy, []Outcome{Inconclusive, Healthy, Unhealthy}},
		{"too few canary requests", seedRules, stable, with(metrics.Requests, 10.0, metrics.ErrorRate, 0.5), 50, Inconclusive, []Outcome{Inconclusive, Inconclusive, Inconclusive}},
		{"enough requests", seedRules, stable, with(metrics.Requests, 50.0), 50, Healthy, []Outcome{Healthy, Healthy, Healthy}},
		{"min bound", []Rule{{Metric: metrics.Requests, Min: f(100)}}, stable, with(metrics.Requests, 99.0), 0, Unhealthy, []Outcome{Unhealthy}},
		{"no rules", nil, stable, stable, 0, Inconclusive, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := metrics.Pair{Stable: obs(tt.stable), Canary: obs(tt.canary)}
			v := Decide(p, Thresholds(tt.rules, p, tt.minRequests))
			if v.Outcome != tt.want {
				t.Errorf("outcome %s, want %s: %s", v.Outcome, tt.want, v.Reason)
			}
			if len(v.Checks) != len(tt.wantChecks) {
				t.Fatalf("%d checks, want %d: %+v", len(v.Checks), len(tt.wantChecks), v.Checks)
			}
			for i, c := range v.Checks {
				if c.Outcome != tt.wantChecks[i] {
					t.Errorf("check %d %s: %s, want %s", i, c, c.Outcome, tt.wantChecks[i])
				}
			}
			// Every number must survive JSON: no NaN, no infinity.
			if _, err := json.Marshal(v); err != nil {
				t.Errorf("verdict does not encode: %v", err)
			}
		})
	}
}

// The verdict carries the numbers: the ratio check of the error-rate spike.
func TestThresholdNumbers(t *testing.T) {
	p := metrics.Pair{
		Stable: obs(map[string]float64{metrics.ErrorRate: 0.02}),
		Canary: obs(map[string]float64{metrics.ErrorRate: 0.05}),
	}
	c := Thresholds(seedRules[:1], p, 0)[0]
	if c.Canary != 0.05 || c.Baseline != 0.02 || math.Abs(c.Ratio-2.5) > 1e-12 || c.Limit != 1.5 || c.Rule != RuleMaxRatio {
		t.Errorf("check numbers %+v", c)
	}
	if !strings.Contains(c.Reason, "2.5x > 1.5x") {
		t.Errorf("reason %q does not show the ratio against the limit", c.Reason)
	}
}

// Known values: R's wilcox.test(1:5, 6:10, exact = FALSE, correct = TRUE) gives W = 0,
// p = 0.01219; the tied case is computed by hand with the tie-corrected variance.
func TestMannWhitneyUKnown(t *testing.T) {
	tests := []struct {
		name string
		x, y []float64
		u, z float64
		p    float64
	}{
		{"separated", []float64{1, 2, 3, 4, 5}, []float64{6, 7, 8, 9, 10}, 0, -2.5067182457620487, 0.012185780355344818},
		{"mirror", []float64{6, 7, 8, 9, 10}, []float64{1, 2, 3, 4, 5}, 25, 2.5067182457620487, 0.012185780355344818},
		{"ties", []float64{1, 2, 2, 3, 4, 5}, []float64{2, 3, 3, 6, 7}, 9, -1.0229289554014698, 0.306341437827711},
		{"all tied", []float64{3, 3, 3}, []float64{3, 3}, 3, 0, 1},
		{"empty", nil, []float64{1}, 0, 0, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := MannWhitneyU(tt.x, tt.y)
			if math.Abs(r.U-tt.u) > 1e-9 || math.Abs(r.Z-tt.z) > 1e-9 || math.Abs(r.P-tt.p) > 1e-9 {
				t.Errorf("got U=%v z=%v p=%v, want U=%v z=%v p=%v", r.U, r.Z, r.P, tt.u, tt.z, tt.p)
			}
		})
	}
}

// latencies draws n log-normal latencies with the given median (seconds), from a fixed seed.
func latencies(seed uint64, n int, median float64) []float64 {
	r := rand.New(rand.NewPCG(seed, 1))
	out := make([]float64, n)
	for i := range out {
		out[i] = median * math.Exp(0.3*r.NormFloat64())
	}
	return out
}

func TestMannWhitneyJudge(t *testing.T) {
	mw := MannWhitney{Confidence: 0.98, MinSamples: 50, MaxEffectSize: 1.2}
	tests := []struct {
		name           string
		stable, canary []float64
		want           Outcome
	}{
		{"identical distributions", latencies(1, 500, 0.020), latencies(2, 500, 0.020), Healthy},
		{"same samples", latencies(1, 500, 0.020), latencies(1, 500, 0.020), Healthy},
		{"canary 3x slower", latencies(1, 500, 0.020), latencies(2, 500, 0.060), Unhealthy},
		{"canary 1.5x slower", latencies(1, 200, 0.020), latencies(2, 200, 0.030), Unhealthy},
		{"shift within the effect bound", latencies(1, 4000, 0.020), latencies(2, 4000, 0.021), Healthy},
		{"canary faster", latencies(1, 500, 0.020), latencies(2, 500, 0.010), Healthy},
		{"below min_samples", latencies(1, 500, 0.020), latencies(2, 49, 0.060), Inconclusive},
		{"no samples at all", nil, nil, Inconclusive},
		{"all tied", repeat(0.01, 100), repeat(0.01, 100), Healthy},
		{"stable median zero", repeat(0, 100), latencies(2, 100, 0.02), Inconclusive},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := metrics.Pair{Stable: metrics.Observation{Latencies: tt.stable}, Canary: metrics.Observation{Latencies: tt.canary}}
			c := mw.Check(p)
			if c.Outcome != tt.want {
				t.Errorf("outcome %s, want %s: %s", c.Outcome, tt.want, c.Reason)
			}
			for name, v := range map[string]float64{"p": c.P, "z": c.Z, "u": c.U, "ratio": c.Ratio, "cles": c.CLES} {
				if math.IsNaN(v) || math.IsInf(v, 0) {
					t.Errorf("%s = %v", name, v)
				}
			}
			if c.CanarySamples != len(tt.canary) || c.BaselineSamples != len(tt.stable) || c.Confidence != 0.98 || c.Limit != 1.2 {
				t.Errorf("check does not carry its inputs: %+v", c)
			}
			if _, err := json.Marshal(Decide(p, []Check{c})); err != nil {
				t.Errorf("verdict does not encode: %v", err)
			}
		})
	}
}

// At 98% confidence, identical distributions are called different about 2% of the time; the
// effect-size bound keeps those from failing a healthy canary.
func TestMannWhitneyNoFalseAlarms(t *testing.T) {
	mw := MannWhitney{Confidence: 0.98, MinSamples: 50}
	significant := 0
	for i := range uint64(200) {
		p := metrics.Pair{
			Stable: metrics.Observation{Latencies: latencies(2*i, 300, 0.02)},
			Canary: metrics.Observation{Latencies: latencies(2*i+1, 300, 0.02)},
		}
		c := mw.Check(p)
		if c.P < 0.02 {
			significant++
		}
		if c.Outcome != Healthy {
			t.Errorf("trial %d: %s", i, c)
		}
	}
	t.Logf("%d of 200 identical pairs significant at 98%%, none unhealthy", significant)
}

func TestMannWhitneyDefaults(t *testing.T) {
	c := MannWhitney{}.Check(metrics.Pair{})
	if c.Confidence != DefaultConfidence || c.Limit != DefaultMaxEffectSize || c.Outcome != Inconclusive {
		t.Errorf("defaults not applied: %+v", c)
	}
	if !strings.Contains(c.Reason, "min_samples 20") {
		t.Errorf("reason %q does not name the default min_samples", c.Reason)
	}
}

func repeat(v float64, n int) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[i] = v
	}
	return out
}
