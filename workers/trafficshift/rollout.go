package trafficshift

import (
	"maps"

	"github.com/sluice-ci/sluice/deploy"
	sluicev1 "github.com/sluice-ci/sluice/proto/sluice/v1"
)

// rolloutOf is the deploy engine's view of a stage's rollout block. The deploy commands and
// the steps stay with the worker and the coordinator, which carry them out.
func rolloutOf(s *sluicev1.RolloutSpec) deploy.Rollout {
	r := s.GetRouter()
	out := deploy.Rollout{
		Router: deploy.RouterConfig{
			Type: r.GetType(), Stable: r.GetStable(), Canary: r.GetCanary(), Admin: r.GetAdmin(),
			Config: r.GetConfig(), Upstream: r.GetUpstream(), Socket: r.GetSocket(), Backend: r.GetBackend(),
		},
		Health: deploy.Health{URL: s.GetDeploy().GetHealth().GetUrl(), Timeout: s.GetDeploy().GetHealth().GetTimeout().AsDuration()},
	}
	a := s.GetAnalysis()
	if a == nil {
		return out
	}
	p, j := a.GetProvider(), a.GetJudge()
	out.Analysis = &deploy.Analysis{
		Interval: a.GetInterval().AsDuration(),
		Provider: deploy.ProviderConfig{Type: p.GetType(), URL: p.GetUrl(), Queries: maps.Clone(p.GetQueries())},
		Judge: deploy.JudgeConfig{
			Type: j.GetType(), Confidence: j.GetConfidence(), MinSamples: int(j.GetMinSamples()), MaxEffectSize: j.GetMaxEffectSize(),
		},
	}
	for _, m := range a.GetMetrics() {
		out.Analysis.Metrics = append(out.Analysis.Metrics, deploy.Metric{
			Name: m.GetName(), Max: m.Max, Min: m.Min, MaxRatioToBaseline: m.MaxRatioToBaseline, Query: m.GetQuery(),
		})
	}
	return out
}
