package deploy

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/sluice-ci/sluice/deploy/judge"
	"github.com/sluice-ci/sluice/deploy/metrics"
	"github.com/sluice-ci/sluice/deploy/proxy"
	"github.com/sluice-ci/sluice/deploy/router"
)

// Names of the built-in modules.
const (
	TypeBuiltin     = "builtin"
	TypeNginx       = "nginx"
	TypeHAProxy     = "haproxy"
	TypePrometheus  = "prometheus"
	TypeThresholds  = "thresholds"
	TypeMannWhitney = "mann-whitney"
)

// SampleQueryName is the provider query (in ProviderConfig.Queries) that overrides
// metrics.DefaultSampleQuery for the mann-whitney judge's latency samples.
const SampleQueryName = "latency_samples"

// The built-in modules, all in one table (as Nomad's BuiltinSchedulers): adding one is a line
// here, or a Register call in the init function of a package of its own.
var (
	builtinRouters = []RouterModule{
		{Name: TypeBuiltin, Needs: []string{"admin"}, New: newBuiltinRouter},
		{Name: TypeNginx, Needs: []string{"config", "upstream", "stable", "canary"}, New: newNginx},
		{Name: TypeHAProxy, Needs: []string{"socket", "backend", "stable", "canary"}, New: newHAProxy},
	}
	builtinProviders = []ProviderModule{
		{Name: TypeBuiltin, New: newBuiltinProvider},
		{Name: TypePrometheus, Needs: []string{"url"}, New: newPrometheus},
	}
	builtinJudges = []JudgeModule{
		{Name: TypeThresholds, New: newThresholds},
		{Name: TypeMannWhitney, Samples: true, New: newMannWhitney},
	}
)

func init() {
	for _, m := range builtinRouters {
		RegisterRouter(m)
	}
	for _, m := range builtinProviders {
		RegisterProvider(m)
	}
	for _, m := range builtinJudges {
		RegisterJudge(m)
	}
}

func newBuiltinRouter(c RouterConfig, o Options) (Router, error) {
	if c.Admin == "" {
		return nil, fmt.Errorf("%w: builtin router needs admin", ErrSpec)
	}
	return &router.Builtin{Admin: c.Admin, Client: o.HTTPClient}, nil
}

func newNginx(c RouterConfig, o Options) (Router, error) {
	return &router.Nginx{Config: c.Config, Upstream: c.Upstream, Stable: c.Stable, Canary: c.Canary, Bin: o.NginxBin, Args: o.NginxArgs}, nil
}

func newHAProxy(c RouterConfig, _ Options) (Router, error) {
	return &router.HAProxy{Socket: c.Socket, Backend: c.Backend, Stable: c.Stable, Canary: c.Canary}, nil
}

// newBuiltinProvider reads a `sluice router`'s stats: at the provider's url, else at the
// builtin router's admin address.
func newBuiltinProvider(m Measurement, o Options) (Provider, error) {
	admin := cmp.Or(m.Provider.URL, m.Router.Admin)
	if admin == "" {
		return nil, fmt.Errorf("%w: builtin provider needs a url (a sluice router's admin address) or a builtin router's admin", ErrSpec)
	}
	for _, mt := range m.Metrics {
		if !slices.Contains(metrics.Known, mt.Name) {
			return nil, fmt.Errorf("%w: builtin provider has no metric %q (it has %s)", ErrSpec, mt.Name, strings.Join(metrics.Known, ", "))
		}
		if mt.Query != "" {
			return nil, fmt.Errorf("%w: metric %s: a query needs the prometheus provider", ErrSpec, mt.Name)
		}
	}
	return &metrics.Builtin{Admin: admin, Client: o.HTTPClient}, nil
}

// newPrometheus queries a Prometheus server, its queries templated with the router's stable
// and canary names.
func newPrometheus(m Measurement, o Options) (Provider, error) {
	p := m.Provider
	prom := &metrics.Prometheus{
		URL:        p.URL,
		StableName: cmp.Or(m.Router.Stable, proxy.RoleStable),
		CanaryName: cmp.Or(m.Router.Canary, proxy.RoleCanary),
		Queries:    map[string]string{},
		Client:     o.HTTPClient,
	}
	for _, mt := range m.Metrics {
		q := cmp.Or(mt.Query, p.Queries[mt.Name], metrics.DefaultQueries[mt.Name])
		if q == "" {
			return nil, fmt.Errorf("%w: metric %s: no query (give one, or use one of %s)", ErrSpec, mt.Name, strings.Join(metrics.Known, ", "))
		}
		prom.Queries[mt.Name] = q
	}
	if m.Samples {
		prom.SampleQuery = cmp.Or(p.Queries[SampleQueryName], metrics.DefaultSampleQuery)
	}
	return prom, nil
}

// thresholds is the thresholds judge: each metric's bounds.
type thresholds struct {
	rules       []judge.Rule
	minRequests int
}

func newThresholds(c JudgeConfig, ms []Metric) (Judge, error) { return thresholdsOf(c, ms), nil }

func thresholdsOf(c JudgeConfig, ms []Metric) thresholds {
	t := thresholds{minRequests: c.MinSamples}
	for _, m := range ms {
		t.rules = append(t.rules, judge.Rule{Metric: m.Name, Max: m.Max, Min: m.Min, MaxRatioToBaseline: m.MaxRatioToBaseline})
	}
	return t
}

func (t thresholds) Checks(p metrics.Pair) []Check {
	return judge.Thresholds(t.rules, p, t.minRequests)
}

// rankTest is the mann-whitney judge: the thresholds, and a Mann-Whitney test on latency
// samples besides.
type rankTest struct {
	thresholds
	test judge.MannWhitney
}

func newMannWhitney(c JudgeConfig, ms []Metric) (Judge, error) {
	return rankTest{
		thresholds: thresholdsOf(c, ms),
		test:       judge.MannWhitney{Confidence: c.Confidence, MinSamples: c.MinSamples, MaxEffectSize: c.MaxEffectSize},
	}, nil
}

func (r rankTest) Checks(p metrics.Pair) []Check {
	return append(r.thresholds.Checks(p), r.test.Check(p))
}
