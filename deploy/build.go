package deploy

import (
	"fmt"
	"slices"
	"strings"

	"github.com/sluice-ci/sluice/deploy/metrics"
	"github.com/sluice-ci/sluice/deploy/proxy"
	"github.com/sluice-ci/sluice/deploy/router"
	sluicev1 "github.com/sluice-ci/sluice/proto/sluice/v1"
)

// Router and provider types a spec names.
const (
	TypeBuiltin    = "builtin"
	TypeNginx      = "nginx"
	TypeHAProxy    = "haproxy"
	TypePrometheus = "prometheus"
)

// SampleQueryName is the provider query (in ProviderSpec.queries) that overrides
// metrics.DefaultSampleQuery for the mann-whitney judge's latency samples.
const SampleQueryName = "latency_samples"

// NewRouter builds the router a spec names.
func NewRouter(r *sluicev1.RouterSpec, o Options) (Router, error) {
	need := func(fields map[string]string) error {
		var missing []string
		for name, v := range fields {
			if v == "" {
				missing = append(missing, name)
			}
		}
		if len(missing) > 0 {
			slices.Sort(missing)
			return fmt.Errorf("%w: %s router needs %s", ErrSpec, r.GetType(), strings.Join(missing, ", "))
		}
		return nil
	}
	switch r.GetType() {
	case TypeBuiltin:
		if err := need(map[string]string{"admin": r.GetAdmin()}); err != nil {
			return nil, err
		}
		return &router.Builtin{Admin: r.GetAdmin(), Client: o.HTTPClient}, nil
	case TypeNginx:
		if err := need(map[string]string{"config": r.GetConfig(), "upstream": r.GetUpstream(), "stable": r.GetStable(), "canary": r.GetCanary()}); err != nil {
			return nil, err
		}
		return &router.Nginx{Config: r.GetConfig(), Upstream: r.GetUpstream(), Stable: r.GetStable(), Canary: r.GetCanary(), Bin: o.NginxBin, Args: o.NginxArgs}, nil
	case TypeHAProxy:
		if err := need(map[string]string{"socket": r.GetSocket(), "backend": r.GetBackend(), "stable": r.GetStable(), "canary": r.GetCanary()}); err != nil {
			return nil, err
		}
		return &router.HAProxy{Socket: r.GetSocket(), Backend: r.GetBackend(), Stable: r.GetStable(), Canary: r.GetCanary()}, nil
	case "":
		return nil, fmt.Errorf("%w: no router type (builtin, nginx or haproxy)", ErrSpec)
	default:
		return nil, fmt.Errorf("%w: router type %q: want builtin, nginx or haproxy", ErrSpec, r.GetType())
	}
}

// NewProvider builds the metrics provider of an analysis block. The builtin provider reads
// the builtin router's admin address (the provider's url, else the router's admin); the
// prometheus provider templates its queries with the router's stable and canary names.
func NewProvider(a *sluicev1.AnalysisSpec, r *sluicev1.RouterSpec, o Options) (Provider, error) {
	p := a.GetProvider()
	switch p.GetType() {
	case "", TypeBuiltin:
		admin := p.GetUrl()
		if admin == "" {
			admin = r.GetAdmin()
		}
		if admin == "" {
			return nil, fmt.Errorf("%w: builtin provider needs a url (a sluice router's admin address) or a builtin router's admin", ErrSpec)
		}
		for _, m := range a.GetMetrics() {
			if !slices.Contains(metrics.Known, m.GetName()) {
				return nil, fmt.Errorf("%w: builtin provider has no metric %q (it has %s)", ErrSpec, m.GetName(), strings.Join(metrics.Known, ", "))
			}
			if m.GetQuery() != "" {
				return nil, fmt.Errorf("%w: metric %s: a query needs the prometheus provider", ErrSpec, m.GetName())
			}
		}
		return &metrics.Builtin{Admin: admin, Client: o.HTTPClient}, nil
	case TypePrometheus:
		if p.GetUrl() == "" {
			return nil, fmt.Errorf("%w: prometheus provider needs a url", ErrSpec)
		}
		prom := &metrics.Prometheus{
			URL:        p.GetUrl(),
			StableName: orDefault(r.GetStable(), proxy.RoleStable),
			CanaryName: orDefault(r.GetCanary(), proxy.RoleCanary),
			Queries:    map[string]string{},
			Client:     o.HTTPClient,
		}
		for _, m := range a.GetMetrics() {
			q := firstNonEmpty(m.GetQuery(), p.GetQueries()[m.GetName()], metrics.DefaultQueries[m.GetName()])
			if q == "" {
				return nil, fmt.Errorf("%w: metric %s: no query (give one, or use one of %s)", ErrSpec, m.GetName(), strings.Join(metrics.Known, ", "))
			}
			prom.Queries[m.GetName()] = q
		}
		if a.GetJudge().GetType() == "mann-whitney" {
			prom.SampleQuery = firstNonEmpty(p.GetQueries()[SampleQueryName], metrics.DefaultSampleQuery)
		}
		// The thresholds judge's min_samples reads the request count.
		if a.GetJudge().GetMinSamples() > 0 {
			if _, ok := prom.Queries[metrics.Requests]; !ok {
				prom.Queries[metrics.Requests] = firstNonEmpty(p.GetQueries()[metrics.Requests], metrics.DefaultQueries[metrics.Requests])
			}
		}
		return prom, nil
	default:
		return nil, fmt.Errorf("%w: provider type %q: want builtin or prometheus", ErrSpec, p.GetType())
	}
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

func firstNonEmpty(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}
