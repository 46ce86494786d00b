package judge

import (
	"cmp"
	"fmt"
	"math"
	"slices"

	"github.com/sluice-ci/sluice/deploy/metrics"
)

// Defaults of MannWhitney's zero fields.
const (
	DefaultConfidence    = 0.95
	DefaultMinSamples    = 20
	DefaultMaxEffectSize = 1.2
)

// MannWhitney compares the canary's latency samples with the stable backend's over the same
// interval, as Kayenta's classifier does: a two-sided Mann-Whitney U test says whether the two
// distributions differ at the given confidence, and an effect-size bound says whether the
// difference matters. The effect size is the ratio of the canary's median latency to the
// stable backend's. The canary is unhealthy only when both say so and it is the slower one: a
// faster canary is not a reason to roll back, and a significant but tiny shift (which a large
// sample always finds) is not either.
type MannWhitney struct {
	// Confidence is 1 - alpha of the test (default DefaultConfidence).
	Confidence float64
	// MinSamples is the fewest samples per backend the test runs on; below it the check is
	// inconclusive (default DefaultMinSamples; at least 2).
	MinSamples int
	// MaxEffectSize is the largest tolerated canary/stable median ratio (default
	// DefaultMaxEffectSize).
	MaxEffectSize float64
}

func (m MannWhitney) withDefaults() MannWhitney {
	if m.Confidence <= 0 || m.Confidence >= 1 {
		m.Confidence = DefaultConfidence
	}
	if m.MinSamples <= 0 {
		m.MinSamples = DefaultMinSamples
	}
	m.MinSamples = max(m.MinSamples, 2)
	if m.MaxEffectSize <= 0 {
		m.MaxEffectSize = DefaultMaxEffectSize
	}
	return m
}

// Check runs the test on the pair's latency samples.
func (m MannWhitney) Check(p metrics.Pair) Check {
	m = m.withDefaults()
	canary, stable := p.Canary.Latencies, p.Stable.Latencies
	c := Check{
		Metric: "latency", Rule: RuleMannWhitney, Limit: m.MaxEffectSize, Confidence: m.Confidence,
		CanarySamples: len(canary), BaselineSamples: len(stable),
	}
	if len(canary) < m.MinSamples || len(stable) < m.MinSamples {
		c.Outcome = Inconclusive
		c.Reason = fmt.Sprintf("%d canary and %d stable samples, fewer than min_samples %d", len(canary), len(stable), m.MinSamples)
		return c
	}
	r := MannWhitneyU(canary, stable)
	c.U, c.Z, c.P, c.CLES = r.U, r.Z, r.P, r.U/(float64(len(canary))*float64(len(stable)))
	c.Canary, c.Baseline = median(canary), median(stable)
	if c.Baseline <= 0 {
		c.Outcome, c.Reason = Inconclusive, "stable median latency is 0: no ratio"
		return c
	}
	c.Ratio = c.Canary / c.Baseline
	alpha := 1 - m.Confidence
	switch {
	case c.P >= alpha:
		c.Outcome = Healthy
		c.Reason = fmt.Sprintf("no significant difference: p=%.3g >= %.3g (medians canary %.4gs, stable %.4gs)", c.P, alpha, c.Canary, c.Baseline)
	case c.Ratio > m.MaxEffectSize:
		c.Outcome = Unhealthy
		c.Reason = fmt.Sprintf("canary slower: p=%.3g < %.3g and median ratio %.3gx > %gx", c.P, alpha, c.Ratio, m.MaxEffectSize)
	default:
		c.Outcome = Healthy
		c.Reason = fmt.Sprintf("significant (p=%.3g) but median ratio %.3gx <= %gx", c.P, c.Ratio, m.MaxEffectSize)
	}
	return c
}

// URank is the outcome of a Mann-Whitney U test.
type URank struct {
	// U is the statistic of the first sample: the number of pairs (x, y) with x > y, ties
	// counting one half.
	U float64
	// Z is U standardised with the tie-corrected variance and a continuity correction.
	Z float64
	// P is the two-sided p-value of the normal approximation; 1 when every value is tied.
	P float64
}

// MannWhitneyU tests whether x and y come from the same distribution (two-sided, normal
// approximation with tie correction, good from about 20 samples each). It never returns NaN:
// empty inputs and all-tied inputs give P = 1.
func MannWhitneyU(x, y []float64) URank {
	n1, n2 := float64(len(x)), float64(len(y))
	if n1 == 0 || n2 == 0 {
		return URank{P: 1}
	}
	type obs struct {
		v     float64
		first bool
	}
	all := make([]obs, 0, len(x)+len(y))
	for _, v := range x {
		all = append(all, obs{v, true})
	}
	for _, v := range y {
		all = append(all, obs{v, false})
	}
	slices.SortFunc(all, func(a, b obs) int { return cmp.Compare(a.v, b.v) })
	var r1, ties float64
	for i := 0; i < len(all); {
		j := i
		for j < len(all) && all[j].v == all[i].v {
			j++
		}
		// Ranks i+1..j share their mean.
		rank := float64(i+1+j) / 2
		for k := i; k < j; k++ {
			if all[k].first {
				r1 += rank
			}
		}
		t := float64(j - i)
		ties += t*t*t - t
		i = j
	}
	n := n1 + n2
	u := r1 - n1*(n1+1)/2
	mean := n1 * n2 / 2
	variance := n1 * n2 / 12 * ((n + 1) - ties/(n*(n-1)))
	if variance <= 0 {
		return URank{U: u, P: 1}
	}
	d := u - mean
	// Continuity correction: half a step towards the mean.
	switch {
	case d > 0.5:
		d -= 0.5
	case d < -0.5:
		d += 0.5
	default:
		d = 0
	}
	z := d / math.Sqrt(variance)
	return URank{U: u, Z: z, P: math.Erfc(math.Abs(z) / math.Sqrt2)}
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return metrics.Quantile(s, 0.5)
}
