package deploy

import "time"

// Rollout is what an Engine is built from: the router that shifts the traffic, the canary's
// health check and the analysis that judges it. Zero values take the defaults documented on
// each field.
type Rollout struct {
	Router RouterConfig
	// Health is the canary's health check after a deploy; an empty URL means none.
	Health Health
	// Analysis judges the canary; nil for a rollout that only shifts traffic.
	Analysis *Analysis
}

// RouterConfig names a registered router and says how to reach it. Each router reads the
// fields it needs (its RouterModule.Needs) and ignores the others.
type RouterConfig struct {
	// Type names a registered router: builtin, nginx, haproxy (see Routers).
	Type string
	// Stable and Canary name the two backends: the servers of an nginx upstream or of a
	// HAProxy backend, and the backend names metrics carry (default "stable" and "canary").
	Stable, Canary string
	// Admin is a `sluice router`'s admin address, host:port or a URL (builtin).
	Admin string
	// Config is the nginx config file holding the upstream block named Upstream (nginx).
	Config, Upstream string
	// Socket is HAProxy's runtime API socket, Backend the backend holding Stable and Canary
	// (haproxy).
	Socket, Backend string
}

// Health is the canary's health check.
type Health struct {
	// URL answers 2xx once the canary is up.
	URL string
	// Timeout bounds the wait (default DefaultHealthTimeout).
	Timeout time.Duration
}

// Analysis measures both backends over intervals and judges the canary on each.
type Analysis struct {
	// Interval is one analysis interval (default DefaultInterval).
	Interval time.Duration
	Provider ProviderConfig
	// Metrics are measured on both backends and bounded; each needs a Name.
	Metrics []Metric
	Judge   JudgeConfig
}

// ProviderConfig names a registered metrics provider and says how to reach it.
type ProviderConfig struct {
	// Type names a registered provider: builtin, prometheus (default DefaultProvider; see
	// Providers).
	Type string
	// URL is where the provider answers: a `sluice router`'s admin address (builtin; default
	// the builtin router's Admin) or a Prometheus server (prometheus).
	URL string
	// Queries override the provider's queries by metric name; SampleQueryName overrides the
	// latency samples' (prometheus).
	Queries map[string]string
}

// Metric is one measured metric and its bounds; nil bounds are not checked.
type Metric struct {
	// Name is the metric, one of metrics.Known or a name Query or ProviderConfig.Queries
	// defines.
	Name string
	// Max and Min bound the canary's value.
	Max, Min *float64
	// MaxRatioToBaseline bounds the canary's value over the stable backend's (1.5: at most
	// 50% above it).
	MaxRatioToBaseline *float64
	// Query measures the metric (prometheus: a template, see metrics.QueryData).
	Query string
}

// JudgeConfig names a registered judge and tunes it; zero fields take the judge's defaults.
type JudgeConfig struct {
	// Type names a registered judge: thresholds, mann-whitney (default DefaultJudge; see
	// Judges).
	Type string
	// Confidence is 1 - alpha of a statistical test (mann-whitney).
	Confidence float64
	// MinSamples makes a check inconclusive while a backend served fewer requests (or, for
	// mann-whitney, has fewer latency samples) in the interval; when set, the provider
	// measures request counts too.
	MinSamples int
	// MaxEffectSize is the largest tolerated canary/stable median latency ratio
	// (mann-whitney).
	MaxEffectSize float64
}
