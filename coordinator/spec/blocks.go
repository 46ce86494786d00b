package spec

import (
	"cmp"
	"fmt"
	"math"
	"strings"

	"google.golang.org/protobuf/proto"
	"gopkg.in/yaml.v3"

	"github.com/sluice-ci/sluice/deploy"
	"github.com/sluice-ci/sluice/internal/strictyaml"
	"github.com/sluice-ci/sluice/lintwarn"
	sluicev1 "github.com/sluice-ci/sluice/proto/sluice/v1"
)

// This file decodes the kind blocks: the settings of one kind's engine.

func (d *decoder) governance(path string, n *yaml.Node) *sluicev1.GovernanceSpec {
	g := &sluicev1.GovernanceSpec{}
	d.Fields(n, path, "governance block", []field{
		{Name: "packs", Fn: func(path string, _, v *yaml.Node) { g.Packs = d.Strs(path, v) }},
		{Name: "rules", Fn: func(path string, _, v *yaml.Node) { g.Rules = d.Str(path, v) }},
		{Name: "baseline", Fn: func(path string, _, v *yaml.Node) { g.Baseline = d.Str(path, v) }},
		{Name: "fail_on", Fn: func(path string, _, v *yaml.Node) { g.FailOn = d.Str(path, v) }},
	})
	return g
}

// warnings decodes a static stage's warnings block: the linters' output formats (names of
// lintwarn.Formats) and user patterns, each checked here so a typo fails before anything runs.
func (d *decoder) warnings(path string, n *yaml.Node) *sluicev1.WarningsSpec {
	w := &sluicev1.WarningsSpec{}
	d.Fields(n, path, "warnings block", []field{
		{Name: "formats", Fn: func(path string, _, v *yaml.Node) {
			nodes, paths := d.Items(path, v)
			for i, item := range nodes {
				if f := d.OneOf(paths[i], item, lintwarn.Formats()...); f != "" {
					w.Formats = append(w.Formats, f)
				}
			}
		}},
		{Name: "patterns", Fn: func(path string, _, v *yaml.Node) {
			nodes, paths := d.Items(path, v)
			for i, item := range nodes {
				p := d.Str(paths[i], item)
				if _, err := lintwarn.CompilePattern(p); err != nil {
					d.Errorf(item, paths[i], "%v", err)
				}
				w.Patterns = append(w.Patterns, p)
			}
		}},
		{Name: "max_warnings", Fn: func(path string, _, v *yaml.Node) { w.MaxWarnings = d.int32(path, v, 0, math.MaxInt32) }},
	})
	if valueOf(n, "formats") == nil && valueOf(n, "patterns") == nil {
		d.Errorf(resolve(n), join(path, "formats"), "missing: name the linters' output formats (%s), e.g. `formats: [go-vet]`, or give patterns", strings.Join(lintwarn.Formats(), ", "))
	}
	return w
}

func (d *decoder) contract(path string, n *yaml.Node) *sluicev1.ContractSpec {
	c := &sluicev1.ContractSpec{}
	d.Fields(n, path, "contract block", []field{
		{Name: "target", Fn: func(path string, _, v *yaml.Node) { c.Target = d.Str(path, v) }},
		{Name: "files", Fn: func(path string, _, v *yaml.Node) { c.Files = d.Strs(path, v) }},
	})
	return c
}

func (d *decoder) backupVerify(path string, n *yaml.Node) *sluicev1.BackupVerifySpec {
	b := &sluicev1.BackupVerifySpec{}
	d.Fields(n, path, "backup_verify block", []field{
		{Name: "dsn_env", Fn: func(path string, _, v *yaml.Node) {
			b.DsnEnv = d.Str(path, v)
			if !sluicev1.IsEnvName(b.DsnEnv) {
				d.Errorf(resolve(v), path, "invalid %q: name the environment variable that holds the DSN, e.g. DATABASE_URL", b.DsnEnv)
			}
		}},
		{Name: "baseline", Fn: func(path string, _, v *yaml.Node) { b.Baseline = d.Str(path, v) }},
		{Name: "dump", Fn: func(path string, _, v *yaml.Node) { b.Dump = d.Str(path, v) }},
		{Name: "restore", Fn: func(path string, _, v *yaml.Node) { b.Restore = d.Bool(path, v) }},
		{Name: "min_rows", Fn: func(path string, _, v *yaml.Node) { b.MinRows, _ = d.Int(path, v, 0, math.MaxInt64) }},
		{Name: "max_drop_pct", Fn: func(path string, _, v *yaml.Node) { b.MaxDropPct = d.number(path, v, between(0, 100)) }},
	})
	return b
}

func (d *decoder) e2e(path string, n *yaml.Node) *sluicev1.E2ESpec {
	e := &sluicev1.E2ESpec{}
	d.Fields(n, path, "e2e block", []field{
		{Name: "base_url", Fn: func(path string, _, v *yaml.Node) { e.BaseUrl = d.Str(path, v) }},
		{Name: "journeys", Fn: func(path string, _, v *yaml.Node) { e.Journeys = d.Strs(path, v) }},
	})
	return e
}

func (d *decoder) load(path string, n *yaml.Node) *sluicev1.LoadSpec {
	l := &sluicev1.LoadSpec{}
	var stages *yaml.Node
	d.Fields(n, path, "load block", []field{
		{Name: "script", Fn: func(path string, _, v *yaml.Node) { l.Script = d.Str(path, v) }},
		{Name: "vus", Fn: func(path string, _, v *yaml.Node) { l.Vus = d.int32(path, v, 1, math.MaxInt32) }},
		{Name: "duration", Fn: func(path string, _, v *yaml.Node) { l.Duration = d.duration(path, v, false) }},
		{Name: "target", Fn: func(path string, _, v *yaml.Node) { l.Target = d.Str(path, v) }},
		{Name: "stages", Fn: func(path string, _, v *yaml.Node) {
			stages = v
			d.list(path, v, func(path string, item *yaml.Node) {
				st := &sluicev1.LoadStage{}
				d.Fields(item, path, "load stage", []field{
					{Name: "duration", Fn: func(path string, _, v *yaml.Node) { st.Duration = d.duration(path, v, false) }},
					{Name: "target", Fn: func(path string, _, v *yaml.Node) { st.Target = d.int32(path, v, 0, math.MaxInt32) }},
				})
				if valueOf(item, "duration") == nil {
					d.Errorf(resolve(item), join(path, "duration"), "missing: how long this stage ramps, e.g. `{duration: 30s, target: 20}`")
				}
				l.Stages = append(l.Stages, st)
			})
		}},
		{Name: "thresholds", Fn: func(path string, _, v *yaml.Node) {
			l.Thresholds = map[string]*sluicev1.ThresholdList{}
			d.Pairs(v, path, func(metric string, _, v *yaml.Node) {
				l.Thresholds[metric] = &sluicev1.ThresholdList{Expressions: d.Strs(join(path, metric), v)}
			})
		}},
	})
	if l.Script == "" {
		d.Errorf(resolve(n), join(path, "script"), "missing: name the k6 script to run, e.g. `script: loadtest/api.js`")
	}
	if stages != nil && (l.Duration != nil || l.Vus != 0) {
		d.Errorf(resolve(stages), join(path, "stages"), "stages replace vus and duration: give one or the other")
	}
	return l
}

func (d *decoder) rollout(path string, n *yaml.Node) *sluicev1.RolloutSpec {
	r := &sluicev1.RolloutSpec{OnFailure: "rollback"}
	d.Fields(n, path, "rollout block", []field{
		{Name: "router", Fn: func(path string, _, v *yaml.Node) { r.Router = d.router(path, v) }},
		{Name: "deploy", Fn: func(path string, _, v *yaml.Node) {
			r.Deploy = &sluicev1.DeploySpec{}
			d.Fields(v, path, "deploy", []field{
				{Name: "run", Fn: func(path string, _, v *yaml.Node) { r.Deploy.Run = d.commands(path, v) }},
				{Name: "health", Fn: func(path string, _, v *yaml.Node) {
					r.Deploy.Health = &sluicev1.HealthCheck{}
					d.Fields(v, path, "health check", []field{
						{Name: "url", Fn: func(path string, _, v *yaml.Node) { r.Deploy.Health.Url = d.Str(path, v) }},
						{Name: "timeout", Fn: func(path string, _, v *yaml.Node) {
							r.Deploy.Health.Timeout = d.durationUpTo(path, v, false, MaxTimeout)
						}},
					})
					if r.Deploy.Health.GetUrl() == "" {
						d.Errorf(resolve(v), join(path, "url"), "missing: the URL that answers 2xx once the canary is up, e.g. `health: {url: \"http://127.0.0.1:18082/healthz\"}`")
					}
				}},
			})
		}},
		{Name: "steps", Fn: func(path string, _, v *yaml.Node) { r.Steps = d.steps(path, v) }},
		{Name: "analysis", Fn: func(path string, _, v *yaml.Node) { r.Analysis = d.analysis(path, v) }},
		{Name: "on_failure", Fn: func(path string, _, v *yaml.Node) { r.OnFailure = d.OneOf(path, v, "rollback", "freeze") }},
	})
	if r.Router == nil {
		d.Errorf(resolve(n), join(path, "router"), "missing: say how traffic is shifted, e.g. `router: {type: builtin, admin: \"http://127.0.0.1:9901\"}`")
	}
	if len(r.Steps) == 0 {
		d.Errorf(resolve(n), join(path, "steps"), "missing: list the traffic steps, e.g. `steps: [{weight: 10, pause: 5m}, {weight: 100}]`")
	}
	return r
}

// router decodes a router block: its type must be a registered router (deploy.Routers), and
// the fields that router needs must be set.
func (d *decoder) router(path string, n *yaml.Node) *sluicev1.RouterSpec {
	r := &sluicev1.RouterSpec{}
	set := map[string]string{}
	str := func(name string, dst *string) field {
		return field{Name: name, Fn: func(path string, _, v *yaml.Node) { *dst = d.Str(path, v); set[name] = *dst }}
	}
	d.Fields(n, path, "router", []field{
		{Name: "type", Fn: func(path string, _, v *yaml.Node) { r.Type = d.OneOf(path, v, deploy.Routers()...) }},
		str("config", &r.Config),
		str("upstream", &r.Upstream),
		str("stable", &r.Stable),
		str("canary", &r.Canary),
		str("admin", &r.Admin),
		str("socket", &r.Socket),
		str("backend", &r.Backend),
	})
	if valueOf(n, "type") == nil {
		d.Errorf(resolve(n), join(path, "type"), "missing: use one of %s", strings.Join(deploy.Routers(), ", "))
	}
	if m, ok := deploy.LookupRouter(r.Type); ok {
		d.needs(path, n, "the "+r.Type+" router", m.Needs, set)
	}
	return r
}

// needs reports each field in needs that set leaves empty, at the block n that lacks it.
func (d *decoder) needs(path string, n *yaml.Node, who string, needs []string, set map[string]string) {
	for _, f := range needs {
		if set[f] == "" {
			d.Errorf(resolve(n), join(path, f), "missing: %s needs %s", who, f)
		}
	}
}

// steps decodes the traffic steps; weights must not decrease, since a rollout only ever moves
// traffic towards the canary (going back is on_failure's job).
func (d *decoder) steps(path string, n *yaml.Node) []*sluicev1.RolloutStep {
	var steps []*sluicev1.RolloutStep
	prev := int32(0)
	d.list(path, n, func(path string, item *yaml.Node) {
		s := &sluicev1.RolloutStep{}
		d.Fields(item, path, "rollout step", []field{
			{Name: "weight", Fn: func(path string, _, v *yaml.Node) {
				w, ok := d.Int(path, v, 0, 100)
				if !ok {
					return
				}
				s.Weight = int32(w)
				if s.Weight < prev {
					d.Errorf(resolve(v), path, "weight %d is below the previous step's %d: weights must not decrease (rolling back is on_failure's job)", s.Weight, prev)
				}
				prev = max(prev, s.Weight)
			}},
			{Name: "pause", Fn: func(path string, _, v *yaml.Node) { s.Pause = d.duration(path, v, true) }},
			{Name: "approval", Fn: func(path string, _, v *yaml.Node) { s.Approval = d.Bool(path, v) }},
		})
		if valueOf(item, "weight") == nil {
			d.Errorf(resolve(item), join(path, "weight"), "missing: give the canary's share of traffic, 0..100")
		}
		steps = append(steps, s)
	})
	return steps
}

func (d *decoder) analysis(path string, n *yaml.Node) *sluicev1.AnalysisSpec {
	a := &sluicev1.AnalysisSpec{}
	d.Fields(n, path, "analysis", []field{
		{Name: "interval", Fn: func(path string, _, v *yaml.Node) { a.Interval = d.duration(path, v, false) }},
		{Name: "failure_limit", Fn: func(path string, _, v *yaml.Node) { a.FailureLimit = d.int32(path, v, 1, 100) }},
		{Name: "provider", Fn: func(path string, _, v *yaml.Node) {
			p := &sluicev1.ProviderSpec{}
			a.Provider = p
			d.Fields(v, path, "provider", []field{
				{Name: "type", Fn: func(path string, _, v *yaml.Node) { p.Type = d.OneOf(path, v, deploy.Providers()...) }},
				{Name: "url", Fn: func(path string, _, v *yaml.Node) { p.Url = d.Str(path, v) }},
				{Name: "queries", Fn: func(path string, _, v *yaml.Node) { p.Queries = d.StringMap(path, v, nil, "") }},
			})
			// An unknown type was reported above; its needs are unknown too.
			if valueOf(v, "type") == nil || p.Type != "" {
				name := cmp.Or(p.Type, deploy.DefaultProvider)
				if m, ok := deploy.LookupProvider(name); ok {
					d.needs(path, v, "the "+name+" provider", m.Needs, map[string]string{"url": p.Url})
				}
			}
		}},
		{Name: "metrics", Fn: func(path string, _, v *yaml.Node) {
			d.list(path, v, func(path string, item *yaml.Node) { a.Metrics = append(a.Metrics, d.metric(path, item)) })
		}},
		{Name: "judge", Fn: func(path string, _, v *yaml.Node) {
			j := &sluicev1.JudgeSpec{}
			a.Judge = j
			d.Fields(v, path, "judge", []field{
				{Name: "type", Fn: func(path string, _, v *yaml.Node) { j.Type = d.OneOf(path, v, deploy.Judges()...) }},
				{Name: "confidence", Fn: func(path string, _, v *yaml.Node) {
					j.Confidence = d.number(path, v, func(c float64) string {
						if c <= 0 || c >= 1 {
							return "must be between 0 and 1, exclusive (e.g. 0.95)"
						}
						return ""
					})
				}},
				{Name: "min_samples", Fn: func(path string, _, v *yaml.Node) { j.MinSamples = d.int32(path, v, 1, math.MaxInt32) }},
				{Name: "max_effect_size", Fn: func(path string, _, v *yaml.Node) { j.MaxEffectSize = d.number(path, v, atLeast(0)) }},
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
	d.Fields(n, path, "metric", []field{
		{Name: "name", Fn: func(path string, _, v *yaml.Node) { m.Name = d.Str(path, v) }},
		{Name: "max", Fn: opt(&m.Max, nil)},
		{Name: "min", Fn: opt(&m.Min, nil)},
		{Name: "max_ratio_to_baseline", Fn: opt(&m.MaxRatioToBaseline, func(r float64) string {
			if r <= 0 {
				return "must be positive (e.g. 1.5 allows 50% above the baseline)"
			}
			return ""
		})},
		{Name: "query", Fn: func(path string, _, v *yaml.Node) { m.Query = d.Str(path, v) }},
	})
	if m.Name == "" {
		d.Errorf(resolve(n), join(path, "name"), "missing: name the metric, e.g. error_rate")
	}
	return m
}

// list calls fn for each element of a list (null is empty) with its indexed path.
func (d *decoder) list(path string, n *yaml.Node, fn func(path string, item *yaml.Node)) {
	n = resolve(n)
	if strictyaml.IsNull(n) {
		return
	}
	if n.Kind != yaml.SequenceNode {
		d.Errorf(n, path, "must be a list, got %s", describe(n))
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
