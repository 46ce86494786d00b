package spec

import (
	"fmt"
	"math"

	"google.golang.org/protobuf/proto"
	"gopkg.in/yaml.v3"

	sluicev1 "github.com/sluice-ci/sluice/proto/sluice/v1"
)

// This file decodes the kind blocks: the settings of one kind's engine.

func (d *decoder) governance(path string, n *yaml.Node) *sluicev1.GovernanceSpec {
	g := &sluicev1.GovernanceSpec{}
	d.fields(n, path, "governance block", []field{
		{"packs", func(path string, _, v *yaml.Node) { g.Packs = d.strs(path, v) }},
		{"rules", func(path string, _, v *yaml.Node) { g.Rules = d.str(path, v) }},
		{"baseline", func(path string, _, v *yaml.Node) { g.Baseline = d.str(path, v) }},
		{"fail_on", func(path string, _, v *yaml.Node) { g.FailOn = d.str(path, v) }},
	})
	return g
}

func (d *decoder) contract(path string, n *yaml.Node) *sluicev1.ContractSpec {
	c := &sluicev1.ContractSpec{}
	d.fields(n, path, "contract block", []field{
		{"target", func(path string, _, v *yaml.Node) { c.Target = d.str(path, v) }},
		{"files", func(path string, _, v *yaml.Node) { c.Files = d.strs(path, v) }},
	})
	return c
}

func (d *decoder) backupVerify(path string, n *yaml.Node) *sluicev1.BackupVerifySpec {
	b := &sluicev1.BackupVerifySpec{}
	d.fields(n, path, "backup_verify block", []field{
		{"dsn_env", func(path string, _, v *yaml.Node) {
			b.DsnEnv = d.str(path, v)
			if !sluicev1.IsEnvName(b.DsnEnv) {
				d.errorf(resolve(v), path, "invalid %q: name the environment variable that holds the DSN, e.g. DATABASE_URL", b.DsnEnv)
			}
		}},
		{"baseline", func(path string, _, v *yaml.Node) { b.Baseline = d.str(path, v) }},
		{"dump", func(path string, _, v *yaml.Node) { b.Dump = d.str(path, v) }},
		{"restore", func(path string, _, v *yaml.Node) { b.Restore = d.boolean(path, v) }},
		{"min_rows", func(path string, _, v *yaml.Node) { b.MinRows, _ = d.integer(path, v, 0, math.MaxInt64) }},
		{"max_drop_pct", func(path string, _, v *yaml.Node) { b.MaxDropPct = d.number(path, v, between(0, 100)) }},
	})
	return b
}

func (d *decoder) e2e(path string, n *yaml.Node) *sluicev1.E2ESpec {
	e := &sluicev1.E2ESpec{}
	d.fields(n, path, "e2e block", []field{
		{"base_url", func(path string, _, v *yaml.Node) { e.BaseUrl = d.str(path, v) }},
		{"journeys", func(path string, _, v *yaml.Node) { e.Journeys = d.strs(path, v) }},
	})
	return e
}

func (d *decoder) load(path string, n *yaml.Node) *sluicev1.LoadSpec {
	l := &sluicev1.LoadSpec{}
	var stages *yaml.Node
	d.fields(n, path, "load block", []field{
		{"script", func(path string, _, v *yaml.Node) { l.Script = d.str(path, v) }},
		{"vus", func(path string, _, v *yaml.Node) { l.Vus = d.int32(path, v, 1, math.MaxInt32) }},
		{"duration", func(path string, _, v *yaml.Node) { l.Duration = d.duration(path, v, false) }},
		{"target", func(path string, _, v *yaml.Node) { l.Target = d.str(path, v) }},
		{"stages", func(path string, _, v *yaml.Node) {
			stages = v
			d.list(path, v, func(path string, item *yaml.Node) {
				st := &sluicev1.LoadStage{}
				d.fields(item, path, "load stage", []field{
					{"duration", func(path string, _, v *yaml.Node) { st.Duration = d.duration(path, v, false) }},
					{"target", func(path string, _, v *yaml.Node) { st.Target = d.int32(path, v, 0, math.MaxInt32) }},
				})
				if valueOf(item, "duration") == nil {
					d.errorf(resolve(item), join(path, "duration"), "missing: how long this stage ramps, e.g. `{duration: 30s, target: 20}`")
				}
				l.Stages = append(l.Stages, st)
			})
		}},
		{"thresholds", func(path string, _, v *yaml.Node) {
			l.Thresholds = map[string]*sluicev1.ThresholdList{}
			d.pairs(v, path, func(metric string, _, v *yaml.Node) {
				l.Thresholds[metric] = &sluicev1.ThresholdList{Expressions: d.strs(join(path, metric), v)}
			})
		}},
	})
	if l.Script == "" {
		d.errorf(resolve(n), join(path, "script"), "missing: name the k6 script to run, e.g. `script: loadtest/api.js`")
	}
	if stages != nil && (l.Duration != nil || l.Vus != 0) {
		d.errorf(resolve(stages), join(path, "stages"), "stages replace vus and duration: give one or the other")
	}
	return l
}

func (d *decoder) rollout(path string, n *yaml.Node) *sluicev1.RolloutSpec {
	r := &sluicev1.RolloutSpec{OnFailure: "rollback"}
	d.fields(n, path, "rollout block", []field{
		{"router", func(path string, _, v *yaml.Node) { r.Router = d.router(path, v) }},
		{"deploy", func(path string, _, v *yaml.Node) {
			r.Deploy = &sluicev1.DeploySpec{}
			d.fields(v, path, "deploy", []field{
				{"run", func(path string, _, v *yaml.Node) { r.Deploy.Run = d.commands(path, v) }},
				{"health", func(path string, _, v *yaml.Node) {
					r.Deploy.Health = &sluicev1.HealthCheck{}
					d.fields(v, path, "health check", []field{
						{"url", func(path string, _, v *yaml.Node) { r.Deploy.Health.Url = d.str(path, v) }},
						{"timeout", func(path string, _, v *yaml.Node) {
							r.Deploy.Health.Timeout = d.durationUpTo(path, v, false, MaxTimeout)
						}},
					})
					if r.Deploy.Health.GetUrl() == "" {
						d.errorf(resolve(v), join(path, "url"), "missing: the URL that answers 2xx once the canary is up, e.g. `health: {url: \"http://127.0.0.1:18082/healthz\"}`")
					}
				}},
			})
		}},
		{"steps", func(path string, _, v *yaml.Node) { r.Steps = d.steps(path, v) }},
		{"analysis", func(path string, _, v *yaml.Node) { r.Analysis = d.analysis(path, v) }},
		{"on_failure", func(path string, _, v *yaml.Node) { r.OnFailure = d.oneOf(path, v, "rollback", "freeze") }},
	})
	if r.Router == nil {
		d.errorf(resolve(n), join(path, "router"), "missing: say how traffic is shifted, e.g. `router: {type: builtin, admin: \"http://127.0.0.1:9901\"}`")
	}
	if len(r.Steps) == 0 {
		d.errorf(resolve(n), join(path, "steps"), "missing: list the traffic steps, e.g. `steps: [{weight: 10, pause: 5m}, {weight: 100}]`")
	}
	return r
}

func (d *decoder) router(path string, n *yaml.Node) *sluicev1.RouterSpec {
	r := &sluicev1.RouterSpec{}
	str := func(dst *string) func(string, *yaml.Node, *yaml.Node) {
		return func(path string, _, v *yaml.Node) { *dst = d.str(path, v) }
	}
	d.fields(n, path, "router", []field{
		{"type", func(path string, _, v *yaml.Node) { r.Type = d.oneOf(path, v, "builtin", "nginx", "haproxy") }},
		{"config", str(&r.Config)},
		{"upstream", str(&r.Upstream)},
		{"stable", str(&r.Stable)},
		{"canary", str(&r.Canary)},
		{"admin", str(&r.Admin)},
		{"socket", str(&r.Socket)},
		{"backend", str(&r.Backend)},
	})
	if valueOf(n, "type") == nil {
		d.errorf(resolve(n), join(path, "type"), "missing: use one of builtin, nginx, haproxy")
	}
	return r
}

// steps decodes the traffic steps; weights must not decrease, since a rollout only ever moves
// traffic towards the canary (going back is on_failure's job).
func (d *decoder) steps(path string, n *yaml.Node) []*sluicev1.RolloutStep {
	var steps []*sluicev1.RolloutStep
	prev := int32(0)
	d.list(path, n, func(path string, item *yaml.Node) {
		s := &sluicev1.RolloutStep{}
		d.fields(item, path, "rollout step", []field{
			{"weight", func(path string, _, v *yaml.Node) {
				w, ok := d.integer(path, v, 0, 100)
				if !ok {
					return
				}
				s.Weight = int32(w)
				if s.Weight < prev {
					d.errorf(resolve(v), path, "weight %d is below the previous step's %d: weights must not decrease (rolling back is on_failure's job)", s.Weight, prev)
				}
				prev = max(prev, s.Weight)
			}},
			{"pause", func(path string, _, v *yaml.Node) { s.Pause = d.duration(path, v, true) }},
			{"approval", func(path string, _, v *yaml.Node) { s.Approval = d.boolean(path, v) }},
		})
		if valueOf(item, "weight") == nil {
			d.errorf(resolve(item), join(path, "weight"), "missing: give the canary's share of traffic, 0..100")
		}
		steps = append(steps, s)
	})
	return steps
}

func (d *decoder) analysis(path string, n *yaml.Node) *sluicev1.AnalysisSpec {
	a := &sluicev1.AnalysisSpec{}
	d.fields(n, path, "analysis", []field{
		{"interval", func(path string, _, v *yaml.Node) { a.Interval = d.duration(path, v, false) }},
		{"failure_limit", func(path string, _, v *yaml.Node) { a.FailureLimit = d.int32(path, v, 1, 100) }},
		{"provider", func(path string, _, v *yaml.Node) {
			p := &sluicev1.ProviderSpec{}
			a.Provider = p
			d.fields(v, path, "provider", []field{
				{"type", func(path string, _, v *yaml.Node) { p.Type = d.oneOf(path, v, "builtin", "prometheus") }},
				{"url", func(path string, _, v *yaml.Node) { p.Url = d.str(path, v) }},
				{"queries", func(path string, _, v *yaml.Node) { p.Queries = d.stringMap(path, v, nil, "") }},
			})
		}},
		{"metrics", func(path string, _, v *yaml.Node) {
			d.list(path, v, func(path string, item *yaml.Node) { a.Metrics = append(a.Metrics, d.metric(path, item)) })
		}},
		{"judge", func(path string, _, v *yaml.Node) {
			j := &sluicev1.JudgeSpec{}
			a.Judge = j
			d.fields(v, path, "judge", []field{
				{"type", func(path string, _, v *yaml.Node) { j.Type = d.oneOf(path, v, "thresholds", "mann-whitney") }},
				{"confidence", func(path string, _, v *yaml.Node) {
					j.Confidence = d.number(path, v, func(c float64) string {
						if c <= 0 || c >= 1 {
							return "must be between 0 and 1, exclusive (e.g. 0.95)"
						}
						return ""
					})
				}},
				{"min_samples", func(path string, _, v *yaml.Node) { j.MinSamples = d.int32(path, v, 1, math.MaxInt32) }},
				{"max_effect_size", func(path string, _, v *yaml.Node) { j.MaxEffectSize = d.number(path, v, atLeast(0)) }},
			})
		}},
	})
	return a
}

func (d *decoder) metric(path string, n *yaml.Node) *sluicev1.MetricSpec {
	m := &sluicev1.MetricSpec{}
	opt := func(dst **float64, check func(float64) string) func(string, *yaml.Node, *yaml.Node) {
		return func(path string, _, v *yaml.Node) { *dst = proto.Float64(d.number(path, v, check)) }
	}
	d.fields(n, path, "metric", []field{
		{"name", func(path string, _, v *yaml.Node) { m.Name = d.str(path, v) }},
		{"max", opt(&m.Max, nil)},
		{"min", opt(&m.Min, nil)},
		{"max_ratio_to_baseline", opt(&m.MaxRatioToBaseline, func(r float64) string {
			if r <= 0 {
				return "must be positive (e.g. 1.5 allows 50% above the baseline)"
			}
			return ""
		})},
		{"query", func(path string, _, v *yaml.Node) { m.Query = d.str(path, v) }},
	})
	if m.Name == "" {
		d.errorf(resolve(n), join(path, "name"), "missing: name the metric, e.g. error_rate")
	}
	return m
}

// list calls fn for each element of a list (null is empty) with its indexed path.
func (d *decoder) list(path string, n *yaml.Node, fn func(path string, item *yaml.Node)) {
	n = resolve(n)
	if isNull(n) {
		return
	}
	if n.Kind != yaml.SequenceNode {
		d.errorf(n, path, "must be a list, got %s", describe(n))
		return
	}
	for i, item := range n.Content {
		fn(fmt.Sprintf("%s[%d]", path, i), resolve(item))
	}
}

func between(lo, hi float64) func(float64) string {
	return func(v float64) string {
		if v < lo || v > hi {
			return fmt.Sprintf("must be %v..%v", lo, hi)
		}
		return ""
	}
}

func atLeast(lo float64) func(float64) string {
	return func(v float64) string {
		if v < lo {
			return fmt.Sprintf("must be at least %v", lo)
		}
		return ""
	}
}
