// Package deploy is the rollout engine behind the traffic-shift stage: it drives a router's
// canary weight, waits for a deployed canary to be healthy, measures both backends over an
// analysis interval and judges the canary. It knows nothing of NATS: a traffic-shift worker
// calls it one step at a time and the coordinator decides the next step.
//
// A worker builds an Engine from the stage's rollout block with New, then for the step it
// was handed calls one of:
//
//	deploy:   run the deploy commands (workers/exec), then e.WaitHealthy(ctx)
//	shift:    e.SetWeight(ctx, w)            // set, then read back
//	analyse:  v, err := e.Analyse(ctx)       // one interval; v.Outcome, v.Checks, v.Numbers()
//	rollback: e.Rollback(ctx)                // weight 0, read back
//
// Every call is idempotent, so a step redelivered after a worker died can simply run again.
package deploy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/sluice-ci/sluice/deploy/judge"
	"github.com/sluice-ci/sluice/deploy/metrics"
	sluicev1 "github.com/sluice-ci/sluice/proto/sluice/v1"
)

var (
	// ErrSpec reports a rollout block the engine cannot run.
	ErrSpec = errors.New("bad rollout spec")
	// ErrWeightMismatch reports a router that reads back another weight than was set.
	ErrWeightMismatch = errors.New("router reads back another weight than was set")
	// ErrUnhealthy reports a canary whose health check did not pass in time.
	ErrUnhealthy = errors.New("canary not healthy")
)

// Router sets the canary's share of traffic, 0-100 percent, and reads it back.
type Router interface {
	SetWeight(ctx context.Context, weight int) error
	Weight(ctx context.Context) (int, error)
}

// Provider measures both backends over one interval: it returns after d, or when ctx ends.
type Provider interface {
	Measure(ctx context.Context, d time.Duration) (metrics.Pair, error)
}

// Verdict and its parts are the judge package's; aliased so callers need one import.
type (
	Verdict = judge.Verdict
	Check   = judge.Check
	Outcome = judge.Outcome
)

// Outcomes of a verdict.
const (
	Healthy      = judge.Healthy
	Unhealthy    = judge.Unhealthy
	Inconclusive = judge.Inconclusive
)

// Options are what a rollout spec does not say: how to reach things from this machine.
type Options struct {
	// HTTPClient talks to routers, Prometheus and health URLs (default: 10 s timeout).
	HTTPClient *http.Client
	// NginxBin and NginxArgs run nginx for the nginx router (see router.Nginx).
	NginxBin  string
	NginxArgs []string
	Logger    *slog.Logger
}

// Engine runs the steps of one rollout.
type Engine struct {
	Router   Router
	Provider Provider
	// Rules are the threshold checks of the analysis metrics.
	Rules []judge.Rule
	// RankTest, when set, adds a Mann-Whitney test on latency samples.
	RankTest *judge.MannWhitney
	// MinSamples makes a threshold check inconclusive while a backend served fewer requests
	// in the interval.
	MinSamples int
	// Interval is one analysis interval.
	Interval time.Duration
	// HealthURL and HealthTimeout are the canary's health check after a deploy.
	HealthURL     string
	HealthTimeout time.Duration

	client *http.Client
	log    *slog.Logger
}

// DefaultInterval is the analysis interval when the spec gives none.
const DefaultInterval = 30 * time.Second

// DefaultHealthTimeout bounds WaitHealthy when the spec gives no timeout.
const DefaultHealthTimeout = 60 * time.Second

// New builds the engine of a rollout block.
func New(spec *sluicev1.RolloutSpec, o Options) (*Engine, error) {
	if spec == nil {
		return nil, fmt.Errorf("%w: no rollout block", ErrSpec)
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	r, err := NewRouter(spec.GetRouter(), o)
	if err != nil {
		return nil, err
	}
	e := &Engine{Router: r, client: o.HTTPClient, log: o.Logger, Interval: DefaultInterval, HealthTimeout: DefaultHealthTimeout}
	if h := spec.GetDeploy().GetHealth(); h != nil {
		e.HealthURL = h.GetUrl()
		if d := h.GetTimeout().AsDuration(); d > 0 {
			e.HealthTimeout = d
		}
	}
	a := spec.GetAnalysis()
	if a == nil {
		return e, nil
	}
	if d := a.GetInterval().AsDuration(); d > 0 {
		e.Interval = d
	}
	for _, m := range a.GetMetrics() {
		if m.GetName() == "" {
			return nil, fmt.Errorf("%w: analysis metric without a name", ErrSpec)
		}
		e.Rules = append(e.Rules, judge.Rule{Metric: m.GetName(), Max: m.Max, Min: m.Min, MaxRatioToBaseline: m.MaxRatioToBaseline})
	}
	j := a.GetJudge()
	e.MinSamples = int(j.GetMinSamples())
	switch j.GetType() {
	case "", "thresholds":
	case "mann-whitney":
		e.RankTest = &judge.MannWhitney{Confidence: j.GetConfidence(), MinSamples: int(j.GetMinSamples()), MaxEffectSize: j.GetMaxEffectSize()}
	default:
		return nil, fmt.Errorf("%w: judge type %q: want thresholds or mann-whitney", ErrSpec, j.GetType())
	}
	if e.Provider, err = NewProvider(a, spec.GetRouter(), o); err != nil {
		return nil, err
	}
	return e, nil
}

// SetWeight sets the canary's share of traffic and reads it back; a router that reads back
// another value fails with ErrWeightMismatch.
func (e *Engine) SetWeight(ctx context.Context, w int) error {
	if err := e.Router.SetWeight(ctx, w); err != nil {
		return fmt.Errorf("set canary weight %d: %w", w, err)
	}
	got, err := e.Router.Weight(ctx)
	if err != nil {
		return fmt.Errorf("read back canary weight: %w", err)
	}
	if got != w {
		return fmt.Errorf("set canary weight %d, read back %d: %w", w, got, ErrWeightMismatch)
	}
	e.logger().Info("canary weight set", "weight", w)
	return nil
}

// Weight reads the canary's share of traffic.
func (e *Engine) Weight(ctx context.Context) (int, error) { return e.Router.Weight(ctx) }

// Rollback sends all traffic back to stable.
func (e *Engine) Rollback(ctx context.Context) error {
	if err := e.SetWeight(ctx, 0); err != nil {
		return fmt.Errorf("rollback: %w", err)
	}
	return nil
}

// Analyse measures one interval and judges it. An error means nothing was measured (the
// provider was unreachable, ctx ended); a verdict with too little data is Inconclusive.
func (e *Engine) Analyse(ctx context.Context) (Verdict, error) {
	if e.Provider == nil {
		return Verdict{}, fmt.Errorf("%w: no analysis provider", ErrSpec)
	}
	p, err := e.Provider.Measure(ctx, e.Interval)
	if err != nil {
		return Verdict{}, fmt.Errorf("analyse: %w", err)
	}
	v := e.Judge(p)
	e.logger().Info("analysis verdict", "outcome", v.Outcome, "reason", v.Reason)
	return v, nil
}

// Judge decides on an interval already measured.
func (e *Engine) Judge(p metrics.Pair) Verdict {
	checks := judge.Thresholds(e.Rules, p, e.MinSamples)
	if e.RankTest != nil {
		checks = append(checks, e.RankTest.Check(p))
	}
	return judge.Decide(p, checks)
}

func (e *Engine) logger() *slog.Logger {
	if e.log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return e.log
}
