package spec

import (
	"bytes"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"google.golang.org/protobuf/types/known/durationpb"
	"gopkg.in/yaml.v3"

	sluicev1 "github.com/sluice-ci/sluice/proto/sluice/v1"
)

// Check puts a spec that did not come from a pipeline file (a protobuf submission over NATS
// or HTTP) through the parser and validator `sluice lint` uses. It renders the spec as a
// pipeline file and parses that, so every path into a fleet is held to one set of rules and
// gets the same messages, without line numbers (the file was never written). The result is
// the parsed spec, with the defaults a file gets; its file name and stage lines are the
// submitted ones.
//
// Values are rendered literally ("${" becomes "$${"), so parsing substitutes nothing: a
// submitted spec was substituted where it was written.
func Check(p *sluicev1.PipelineSpec) (*sluicev1.PipelineSpec, error) {
	file := p.GetFile()
	if file == "" {
		file = "submitted spec"
	}
	data, err := Render(p)
	if err != nil {
		return nil, &Error{File: file, Msg: err.Error()}
	}
	parsed, err := Parse(file, data, nil, nil)
	if err != nil {
		for _, e := range List(err) {
			e.Line, e.Column = 0, 0
			e.Msg = renderedLine.ReplaceAllString(e.Msg, "")
		}
		return nil, err
	}
	lines := make(map[string]int32, len(p.GetStages()))
	for _, s := range p.GetStages() {
		lines[s.GetName()] = s.GetLine()
	}
	for _, s := range parsed.GetStages() {
		s.Line = lines[s.GetName()]
	}
	return parsed, nil
}

// renderedLine is a line reference in a message, meaningless for a rendered spec.
var renderedLine = regexp.MustCompile(` \(first defined at line \d+\)`)

// Render writes p as a pipeline file that Parse reads back as p.
func Render(p *sluicev1.PipelineSpec) ([]byte, error) {
	var r renderer
	root := r.mapping()
	if p.GetVersion() != 0 {
		r.put(root, "version", r.int(int64(p.GetVersion())))
	}
	r.putStr(root, "name", p.GetName())
	r.putMap(root, "env", p.GetEnv())
	stages := r.mapping()
	for _, s := range p.GetStages() {
		stages.Content = append(stages.Content, r.str(s.GetName()), r.stage(s))
	}
	r.put(root, "stages", stages)
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	if err := enc.Encode(root); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

type renderer struct{}

func (renderer) mapping() *yaml.Node { return &yaml.Node{Kind: yaml.MappingNode} }

// str is a quoted string with every "${" made literal.
func (renderer) str(s string) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Style: yaml.DoubleQuotedStyle, Value: strings.ReplaceAll(s, "${", "$${")}
}

func (renderer) int(n int64) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: strconv.FormatInt(n, 10)}
}

func (r renderer) float(f float64) *yaml.Node {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		// Not a YAML number: the parser says the field wants one.
		return r.str(strconv.FormatFloat(f, 'g', -1, 64))
	}
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!float", Value: strconv.FormatFloat(f, 'g', -1, 64)}
}

func (renderer) bool(b bool) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: strconv.FormatBool(b)}
}

func (r renderer) strs(list []string) *yaml.Node {
	n := &yaml.Node{Kind: yaml.SequenceNode}
	for _, s := range list {
		n.Content = append(n.Content, r.str(s))
	}
	return n
}

func (r renderer) duration(d *durationpb.Duration) *yaml.Node {
	return r.str(d.AsDuration().String())
}

func (r renderer) put(m *yaml.Node, key string, v *yaml.Node) {
	m.Content = append(m.Content, r.str(key), v)
}

func (r renderer) putStr(m *yaml.Node, key, v string) {
	if v != "" {
		r.put(m, key, r.str(v))
	}
}

func (r renderer) putStrs(m *yaml.Node, key string, v []string) {
	if len(v) > 0 {
		r.put(m, key, r.strs(v))
	}
}

func (r renderer) putInt(m *yaml.Node, key string, v int64) {
	if v != 0 {
		r.put(m, key, r.int(v))
	}
}

func (r renderer) putDuration(m *yaml.Node, key string, d *durationpb.Duration) {
	if d != nil {
		r.put(m, key, r.duration(d))
	}
}

// putMap writes a string map in key order, so the rendering is deterministic.
func (r renderer) putMap(m *yaml.Node, key string, v map[string]string) {
	if len(v) == 0 {
		return
	}
	n := r.mapping()
	keys := make([]string, 0, len(v))
	for k := range v {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		n.Content = append(n.Content, r.str(k), r.str(v[k]))
	}
	r.put(m, key, n)
}

func (r renderer) stage(s *sluicev1.StageSpec) *yaml.Node {
	m := r.mapping()
	if s.GetKind() != sluicev1.StageKind_STAGE_KIND_UNSPECIFIED {
		r.put(m, "kind", r.str(s.GetKind().Slug()))
	}
	r.putStrs(m, "needs", s.GetNeeds())
	r.putStrs(m, "run", s.GetRun())
	r.putMap(m, "env", s.GetEnv())
	r.putStrs(m, "secrets", s.GetSecrets())
	r.putInt(m, "shards", int64(s.GetShards()))
	r.putInt(m, "retries", int64(s.GetRetries()))
	r.putDuration(m, "timeout", s.GetTimeout())
	r.putDuration(m, "retry_backoff", s.GetRetryBackoff())
	if w := s.GetWhen(); w != nil {
		wm := r.mapping()
		r.putStrs(wm, "branch", w.GetBranch())
		r.put(m, "when", wm)
	}
	switch {
	case len(s.GetApprovalBy()) > 0:
		am := r.mapping()
		r.put(am, "required", r.bool(s.GetApproval() == "required"))
		r.put(am, "by", r.strs(s.GetApprovalBy()))
		r.put(m, "approval", am)
	case s.GetApproval() != "":
		r.put(m, "approval", r.str(s.GetApproval()))
	}
	if c := s.GetConcurrency(); c != nil {
		cm := r.mapping()
		r.putStr(cm, "group", c.GetGroup())
		r.put(m, "concurrency", cm)
	}
	r.putStr(m, "pool", s.GetPool())
	if g := s.GetGovernance(); g != nil {
		gm := r.mapping()
		r.putStrs(gm, "packs", g.GetPacks())
		r.putStr(gm, "rules", g.GetRules())
		r.putStr(gm, "baseline", g.GetBaseline())
		r.putStr(gm, "fail_on", g.GetFailOn())
		r.put(m, "governance", gm)
	}
	if w := s.GetWarnings(); w != nil {
		wm := r.mapping()
		r.putStrs(wm, "formats", w.GetFormats())
		r.putStrs(wm, "patterns", w.GetPatterns())
		r.putInt(wm, "max_warnings", int64(w.GetMaxWarnings()))
		r.put(m, "warnings", wm)
	}
	if c := s.GetContract(); c != nil {
		cm := r.mapping()
		r.putStr(cm, "target", c.GetTarget())
		r.putStrs(cm, "files", c.GetFiles())
		r.put(m, "contract", cm)
	}
	if b := s.GetBackupVerify(); b != nil {
		bm := r.mapping()
		r.putStr(bm, "dsn_env", b.GetDsnEnv())
		r.putStr(bm, "baseline", b.GetBaseline())
		r.putStr(bm, "dump", b.GetDump())
		if b.GetRestore() {
			r.put(bm, "restore", r.bool(true))
		}
		r.putInt(bm, "min_rows", b.GetMinRows())
		if b.GetMaxDropPct() != 0 {
			r.put(bm, "max_drop_pct", r.float(b.GetMaxDropPct()))
		}
		r.put(m, "backup_verify", bm)
	}
	if e := s.GetE2E(); e != nil {
		em := r.mapping()
		r.putStr(em, "base_url", e.GetBaseUrl())
		r.putStrs(em, "journeys", e.GetJourneys())
		r.put(m, "e2e", em)
	}
	if l := s.GetLoad(); l != nil {
		r.put(m, "load", r.load(l))
	}
	if ro := s.GetRollout(); ro != nil {
		r.put(m, "rollout", r.rollout(ro))
	}
	return m
}

func (r renderer) load(l *sluicev1.LoadSpec) *yaml.Node {
	m := r.mapping()
	r.putStr(m, "script", l.GetScript())
	r.putInt(m, "vus", int64(l.GetVus()))
	r.putDuration(m, "duration", l.GetDuration())
	r.putStr(m, "target", l.GetTarget())
	if len(l.GetThresholds()) > 0 {
		tm := r.mapping()
		keys := make([]string, 0, len(l.GetThresholds()))
		for k := range l.GetThresholds() {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			tm.Content = append(tm.Content, r.str(k), r.strs(l.GetThresholds()[k].GetExpressions()))
		}
		r.put(m, "thresholds", tm)
	}
	if len(l.GetStages()) > 0 {
		sn := &yaml.Node{Kind: yaml.SequenceNode}
		for _, st := range l.GetStages() {
			sm := r.mapping()
			r.putDuration(sm, "duration", st.GetDuration())
			r.put(sm, "target", r.int(int64(st.GetTarget())))
			sn.Content = append(sn.Content, sm)
		}
		r.put(m, "stages", sn)
	}
	return m
}

func (r renderer) rollout(ro *sluicev1.RolloutSpec) *yaml.Node {
	m := r.mapping()
	if rt := ro.GetRouter(); rt != nil {
		rm := r.mapping()
		r.putStr(rm, "type", rt.GetType())
		r.putStr(rm, "config", rt.GetConfig())
		r.putStr(rm, "upstream", rt.GetUpstream())
		r.putStr(rm, "stable", rt.GetStable())
		r.putStr(rm, "canary", rt.GetCanary())
		r.putStr(rm, "admin", rt.GetAdmin())
		r.putStr(rm, "socket", rt.GetSocket())
		r.putStr(rm, "backend", rt.GetBackend())
		r.put(m, "router", rm)
	}
	if d := ro.GetDeploy(); d != nil {
		dm := r.mapping()
		r.putStrs(dm, "run", d.GetRun())
		if h := d.GetHealth(); h != nil {
			hm := r.mapping()
			r.putStr(hm, "url", h.GetUrl())
			r.putDuration(hm, "timeout", h.GetTimeout())
			r.put(dm, "health", hm)
		}
		r.put(m, "deploy", dm)
	}
	if len(ro.GetSteps()) > 0 {
		sn := &yaml.Node{Kind: yaml.SequenceNode}
		for _, st := range ro.GetSteps() {
			sm := r.mapping()
			r.put(sm, "weight", r.int(int64(st.GetWeight())))
			r.putDuration(sm, "pause", st.GetPause())
			if st.GetApproval() {
				r.put(sm, "approval", r.bool(true))
			}
			sn.Content = append(sn.Content, sm)
		}
		r.put(m, "steps", sn)
	}
	if a := ro.GetAnalysis(); a != nil {
		r.put(m, "analysis", r.analysis(a))
	}
	r.putStr(m, "on_failure", ro.GetOnFailure())
	return m
}

func (r renderer) analysis(a *sluicev1.AnalysisSpec) *yaml.Node {
	m := r.mapping()
	r.putDuration(m, "interval", a.GetInterval())
	r.putInt(m, "failure_limit", int64(a.GetFailureLimit()))
	if p := a.GetProvider(); p != nil {
		pm := r.mapping()
		r.putStr(pm, "type", p.GetType())
		r.putStr(pm, "url", p.GetUrl())
		r.putMap(pm, "queries", p.GetQueries())
		r.put(m, "provider", pm)
	}
	if len(a.GetMetrics()) > 0 {
		mn := &yaml.Node{Kind: yaml.SequenceNode}
		for _, x := range a.GetMetrics() {
			xm := r.mapping()
			r.putStr(xm, "name", x.GetName())
			if x.Max != nil {
				r.put(xm, "max", r.float(x.GetMax()))
			}
			if x.Min != nil {
				r.put(xm, "min", r.float(x.GetMin()))
			}
			if x.MaxRatioToBaseline != nil {
				r.put(xm, "max_ratio_to_baseline", r.float(x.GetMaxRatioToBaseline()))
			}
			r.putStr(xm, "query", x.GetQuery())
			mn.Content = append(mn.Content, xm)
		}
		r.put(m, "metrics", mn)
	}
	if j := a.GetJudge(); j != nil {
		jm := r.mapping()
		r.putStr(jm, "type", j.GetType())
		if j.GetConfidence() != 0 {
			r.put(jm, "confidence", r.float(j.GetConfidence()))
		}
		r.putInt(jm, "min_samples", int64(j.GetMinSamples()))
		if j.GetMaxEffectSize() != 0 {
			r.put(jm, "max_effect_size", r.float(j.GetMaxEffectSize()))
		}
		r.put(m, "judge", jm)
	}
	return m
}
