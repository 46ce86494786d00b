// Package judge decides whether a canary is healthy from what a metrics provider measured on
// it and on the stable backend over the same interval. Every check keeps the numbers it was
// decided on, so a verdict explains itself.
package judge

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/sluice-ci/sluice/deploy/metrics"
)

// Outcome of a check or a verdict.
type Outcome string

const (
	Healthy      Outcome = "healthy"
	Unhealthy    Outcome = "unhealthy"
	Inconclusive Outcome = "inconclusive"
)

// Rule names of a Check.
const (
	RuleMax         = "max"
	RuleMin         = "min"
	RuleMaxRatio    = "max_ratio_to_baseline"
	RuleMannWhitney = "mann-whitney"
)

// Check is one rule applied to one metric, with the numbers it was decided on. Fields that do
// not apply to the rule are zero.
type Check struct {
	Metric  string  `json:"metric"`
	Rule    string  `json:"rule"`
	Outcome Outcome `json:"outcome"`
	// Canary is the canary's value; Baseline the stable backend's over the same interval
	// (ratio rules; the median latency for mann-whitney, whose Canary is the canary's median).
	Canary   float64 `json:"canary"`
	Baseline float64 `json:"baseline,omitempty"`
	// Ratio is Canary/Baseline (ratio rules; the effect size for mann-whitney).
	Ratio float64 `json:"ratio,omitempty"`
	// Limit is the rule's bound: max, min, max ratio, or max effect size.
	Limit float64 `json:"limit"`

	// Rank test numbers (mann-whitney only).
	CanarySamples   int     `json:"canary_samples,omitempty"`
	BaselineSamples int     `json:"baseline_samples,omitempty"`
	U               float64 `json:"u,omitempty"`
	Z               float64 `json:"z,omitempty"`
	P               float64 `json:"p,omitempty"`
	Confidence      float64 `json:"confidence,omitempty"`
	// CLES is the common-language effect size: the probability that a canary sample exceeds
	// a stable one (0.5 when they are alike).
	CLES float64 `json:"cles,omitempty"`

	Reason string `json:"reason"`
}

// String is the check in one line, numbers included.
func (c Check) String() string {
	return fmt.Sprintf("%s %s: %s (%s)", c.Metric, c.Rule, c.Outcome, c.Reason)
}

// Verdict is the decision over one interval and everything it was decided on.
type Verdict struct {
	Outcome Outcome `json:"outcome"`
	// Reason names the checks that made the outcome.
	Reason string    `json:"reason"`
	Start  time.Time `json:"start"`
	End    time.Time `json:"end"`
	// Stable and Canary are every value the provider measured.
	Stable metrics.Observation `json:"stable"`
	Canary metrics.Observation `json:"canary"`
	Checks []Check             `json:"checks"`
}

// Decide combines checks into a verdict: unhealthy when any check is, else inconclusive when
// any check is (or there is none), else healthy.
func Decide(p metrics.Pair, checks []Check) Verdict {
	v := Verdict{Start: p.Canary.Start, End: p.Canary.End, Stable: p.Stable, Canary: p.Canary, Checks: checks}
	var bad, unsure []string
	for _, c := range checks {
		switch c.Outcome {
		case Unhealthy:
			bad = append(bad, c.String())
		case Inconclusive:
			unsure = append(unsure, c.String())
		}
	}
	switch {
	case len(bad) > 0:
		v.Outcome, v.Reason = Unhealthy, strings.Join(bad, "; ")
	case len(checks) == 0:
		v.Outcome, v.Reason = Inconclusive, "no checks configured"
	case len(unsure) > 0:
		v.Outcome, v.Reason = Inconclusive, strings.Join(unsure, "; ")
	default:
		v.Outcome, v.Reason = Healthy, fmt.Sprintf("all %d checks passed", len(checks))
	}
	return v
}

// Rule bounds one metric; nil bounds are not checked.
type Rule struct {
	Metric             string
	Max, Min           *float64
	MaxRatioToBaseline *float64
}

// Thresholds applies absolute bounds to the canary's values and ratio bounds to the canary's
// value over the stable backend's. minRequests (when > 0) makes every check inconclusive while
// a backend it reads served fewer requests than that in the interval: a rate over three
// requests says nothing.
func Thresholds(rules []Rule, p metrics.Pair, minRequests int) []Check {
	var out []Check
	for _, r := range rules {
		if r.Max != nil {
			out = append(out, absolute(r.Metric, RuleMax, *r.Max, p.Canary, minRequests))
		}
		if r.Min != nil {
			out = append(out, absolute(r.Metric, RuleMin, *r.Min, p.Canary, minRequests))
		}
		if r.MaxRatioToBaseline != nil {
			out = append(out, ratio(r.Metric, *r.MaxRatioToBaseline, p, minRequests))
		}
	}
	return out
}

// tooFew says why o is too thin to judge, or "" when it is not.
func tooFew(o metrics.Observation, role string, minRequests int) string {
	if minRequests <= 0 {
		return ""
	}
	if n, ok := o.Value(metrics.Requests); ok && n < float64(minRequests) {
		return fmt.Sprintf("%s served %g requests, fewer than min_samples %d", role, n, minRequests)
	}
	return ""
}

func absolute(metric, rule string, limit float64, canary metrics.Observation, minRequests int) Check {
	c := Check{Metric: metric, Rule: rule, Limit: limit}
	v, ok := canary.Value(metric)
	if !ok {
		c.Outcome, c.Reason = Inconclusive, "no canary data"
		return c
	}
	c.Canary = v
	if why := tooFew(canary, "canary", minRequests); why != "" {
		c.Outcome, c.Reason = Inconclusive, why
		return c
	}
	switch {
	case rule == RuleMax && v > limit:
		c.Outcome, c.Reason = Unhealthy, fmt.Sprintf("canary %g > max %g", v, limit)
	case rule == RuleMin && v < limit:
		c.Outcome, c.Reason = Unhealthy, fmt.Sprintf("canary %g < min %g", v, limit)
	case rule == RuleMax:
		c.Outcome, c.Reason = Healthy, fmt.Sprintf("canary %g <= max %g", v, limit)
	default:
		c.Outcome, c.Reason = Healthy, fmt.Sprintf("canary %g >= min %g", v, limit)
	}
	return c
}

func ratio(metric string, limit float64, p metrics.Pair, minRequests int) Check {
	c := Check{Metric: metric, Rule: RuleMaxRatio, Limit: limit}
	cv, cok := p.Canary.Value(metric)
	bv, bok := p.Stable.Value(metric)
	c.Canary, c.Baseline = cv, bv
	switch {
	case !cok:
		c.Outcome, c.Reason = Inconclusive, "no canary data"
		return c
	case !bok:
		c.Outcome, c.Reason = Inconclusive, "no baseline (stable) data"
		return c
	}
	if why := tooFew(p.Canary, "canary", minRequests) + tooFew(p.Stable, "stable", minRequests); why != "" {
		c.Outcome, c.Reason = Inconclusive, why
		return c
	}
	switch {
	case bv == 0 && cv == 0:
		c.Outcome, c.Reason = Healthy, "canary and baseline both 0"
	case bv == 0:
		// Any canary value above a zero baseline exceeds every ratio; the ratio itself is
		// infinite and left out.
		c.Outcome, c.Reason = Unhealthy, fmt.Sprintf("canary %g over a baseline of 0", cv)
	default:
		c.Ratio = cv / bv
		if c.Ratio > limit {
			c.Outcome, c.Reason = Unhealthy, fmt.Sprintf("canary %g / baseline %g = %.3gx > %gx", cv, bv, c.Ratio, limit)
		} else {
			c.Outcome, c.Reason = Healthy, fmt.Sprintf("canary %g / baseline %g = %.3gx <= %gx", cv, bv, c.Ratio, limit)
		}
	}
	if math.IsNaN(c.Ratio) || math.IsInf(c.Ratio, 0) {
		c.Ratio = 0
	}
	return c
}

// Numbers flattens the verdict's numbers into named values, for a result's metrics: the
// measured values as "stable.<metric>" and "canary.<metric>", each check's as
// "<metric>.<rule>.<number>" (canary, baseline, ratio, limit, and p, z, u, cles,
// canary_samples, baseline_samples for the rank test). Absent numbers are left out.
func (v Verdict) Numbers() map[string]float64 {
	out := map[string]float64{}
	for role, o := range map[string]metrics.Observation{"stable": v.Stable, "canary": v.Canary} {
		for name, x := range o.Values {
			out[role+"."+name] = x
		}
	}
	for _, c := range v.Checks {
		prefix := c.Metric + "." + c.Rule + "."
		out[prefix+"limit"] = c.Limit
		nums := map[string]float64{"canary": c.Canary, "baseline": c.Baseline, "ratio": c.Ratio}
		if c.Rule == RuleMannWhitney {
			nums["p"], nums["z"], nums["u"], nums["cles"] = c.P, c.Z, c.U, c.CLES
			nums["canary_samples"], nums["baseline_samples"] = float64(c.CanarySamples), float64(c.BaselineSamples)
		}
		for k, x := range nums {
			if x != 0 || c.Outcome != Inconclusive {
				out[prefix+k] = x
			}
		}
	}
	return out
}
