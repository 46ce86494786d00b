// Package deploy is the rollout engine behind the traffic-shift stage: it drives a router's
// canary weight, waits for a deployed canary to be healthy, measures both backends over an
// analysis interval and judges the canary. It knows nothing of NATS or of the wire format: a
// traffic-shift worker turns a task's rollout block into a Rollout, calls the engine one step
// at a time, and the coordinator decides the next step.
//
// A worker builds an Engine from the stage's Rollout with New, then for the step it was handed
// calls one of:
//
//	deploy:   run the deploy commands (workers/exec), then e.WaitHealthy(ctx)
//	shift:    e.SetWeight(ctx, w)            // set, then read back
//	analyse:  v, err := e.Analyse(ctx)       // one interval; v.Outcome, v.Checks, v.Numbers()
//	rollback: e.Rollback(ctx)                // weight 0, read back
//
// Every call is idempotent, so a step redelivered after a worker died can simply run again.
//
// # Routers, providers and judges
//
// Routers, metrics providers and judges are modules in registries, looked up by the Type a
// Rollout names: Routers, Providers and Judges list them, and pipeline validation (`sluice
// lint`) allows exactly those names. The built-in ones are in the table in modules.go.
//
// # Adding a router
//
// Implement Router (SetWeight, Weight; the built-in ones are in deploy/router) and register
// it:
//
//	deploy.RegisterRouter(deploy.RouterModule{
//		Name:  "envoy",
//		Needs: []string{"admin", "stable", "canary"}, // checked by NewRouter and by `sluice lint`
//		New: func(c deploy.RouterConfig, o deploy.Options) (deploy.Router, error) {
//			return &envoy{Admin: c.Admin, Stable: c.Stable, Canary: c.Canary, Client: o.HTTPClient}, nil
//		},
//	})
//
// in modules.go's table, or from an init function of the router's own package (which the
// sluice binary must then import). A router reads its settings from RouterConfig; one that
// needs a setting RouterConfig lacks needs a field there and in the pipeline's router block
// (proto/sluice/v1, coordinator/spec, workers/trafficshift's conversion). Providers
// (RegisterProvider, a Provider measuring a Measurement) and judges (RegisterJudge, a Judge
// turning a measured interval into checks) are added the same way. deploytest registers a
// module for the length of one test.
package deploy

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"time"

	"github.com/sluice-ci/sluice/deploy/judge"
	"github.com/sluice-ci/sluice/deploy/metrics"
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

// Judge turns one measured interval into checks, which the engine combines into a verdict
// (judge.Decide): unhealthy when any check is.
type Judge interface {
	Checks(p metrics.Pair) []Check
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

// Options are what a Rollout does not say: how to reach things from this machine.
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
	Router Router
	// Provider and Judge analyse the canary; nil for a rollout without analysis.
	Provider Provider
	Judge    Judge
	// Interval is one analysis interval.
	Interval time.Duration
	// HealthURL and HealthTimeout are the canary's health check after a deploy.
	HealthURL     string
	HealthTimeout time.Duration

	client *http.Client
	log    *slog.Logger
}

// DefaultInterval is the analysis interval when the Rollout gives none.
const DefaultInterval = 30 * time.Second

// DefaultHealthTimeout bounds WaitHealthy when the Rollout gives no timeout.
const DefaultHealthTimeout = 60 * time.Second

// New builds the engine of a rollout: its router, and for an analysis its judge and provider,
// each from the registered module its config names. A config New cannot run fails with
// ErrSpec.
func New(r Rollout, o Options) (*Engine, error) {
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	rt, err := NewRouter(r.Router, o)
	if err != nil {
		return nil, err
	}
	e := &Engine{Router: rt, client: o.HTTPClient, log: o.Logger, Interval: DefaultInterval,
		HealthURL: r.Health.URL, HealthTimeout: DefaultHealthTimeout}
	if r.Health.Timeout > 0 {
		e.HealthTimeout = r.Health.Timeout
	}
	a := r.Analysis
	if a == nil {
		return e, nil
	}
	if a.Interval > 0 {
		e.Interval = a.Interval
	}
	for _, m := range a.Metrics {
		if m.Name == "" {
			return nil, fmt.Errorf("%w: analysis metric without a name", ErrSpec)
		}
	}
	if e.Judge, err = NewJudge(a.Judge, a.Metrics); err != nil {
		return nil, err
	}
	if e.Provider, err = NewProvider(*a, r.Router, o); err != nil {
		return nil, err
	}
	return e, nil
}

// NewRouter builds the registered router c names.
func NewRouter(c RouterConfig, o Options) (Router, error) {
	m, err := routers.lookup(c.Type)
	if err != nil {
		return nil, err
	}
	if err := routers.missing(c.Type, c, m.Needs); err != nil {
		return nil, err
	}
	return m.New(c, o)
}

// NewJudge builds the registered judge c names (default DefaultJudge) over an analysis's
// metrics.
func NewJudge(c JudgeConfig, ms []Metric) (Judge, error) {
	m, err := judges.lookup(cmp.Or(c.Type, DefaultJudge))
	if err != nil {
		return nil, err
	}
	return m.New(c, ms)
}

// NewProvider builds the registered metrics provider of an analysis (default
// DefaultProvider) for what its judge reads: its metrics, the request count when the judge
// has MinSamples, and latency samples when the judge compares them. r is the rollout's
// router, whose backend names and address a provider may read.
func NewProvider(a Analysis, r RouterConfig, o Options) (Provider, error) {
	p := a.Provider
	name := cmp.Or(p.Type, DefaultProvider)
	m, err := providers.lookup(name)
	if err != nil {
		return nil, err
	}
	if err := providers.missing(name, p, m.Needs); err != nil {
		return nil, err
	}
	j, err := judges.lookup(cmp.Or(a.Judge.Type, DefaultJudge))
	if err != nil {
		return nil, err
	}
	ms := a.Metrics
	if a.Judge.MinSamples > 0 && !slices.ContainsFunc(ms, func(m Metric) bool { return m.Name == metrics.Requests }) {
		ms = append(slices.Clip(ms), Metric{Name: metrics.Requests})
	}
	return m.New(Measurement{Provider: p, Metrics: ms, Samples: j.Samples, Router: r}, o)
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
	v := e.Decide(p)
	e.logger().Info("analysis verdict", "outcome", v.Outcome, "reason", v.Reason)
	return v, nil
}

// Decide judges an interval already measured; an engine without a judge finds it
// inconclusive ("no checks configured").
func (e *Engine) Decide(p metrics.Pair) Verdict {
	var checks []Check
	if e.Judge != nil {
		checks = e.Judge.Checks(p)
	}
	return judge.Decide(p, checks)
}

func (e *Engine) logger() *slog.Logger {
	if e.log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return e.log
}
