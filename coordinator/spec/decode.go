package spec

import (
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"gopkg.in/yaml.v3"

	"github.com/sluice-ci/sluice/internal/strictyaml"
	sluicev1 "github.com/sluice-ci/sluice/proto/sluice/v1"
)

// decoder walks a pipeline's yaml.Node tree with the strict decoder every Sluice file format
// shares, adding what is a pipeline's own: ${VAR} substitution, run: commands, names that
// become subject tokens, pools and approvals.
type decoder struct {
	*strictyaml.Decoder
	// lookup resolves ${VAR} outside run: (--set, pipeline env, process env); runLookup inside
	// run: (--set, pipeline env), where the rest is left for the worker's shell.
	lookup, runLookup func(string) (string, bool)
}

func newDecoder(file string) *decoder {
	d := &decoder{Decoder: &strictyaml.Decoder{File: file}}
	d.Expand = func(s string) (string, []string) { return expand(s, d.lookup, true) }
	return d
}

// field is one known key of a mapping and what to do with its value.
type field = strictyaml.Field

var (
	join     = strictyaml.Join
	resolve  = strictyaml.Resolve
	describe = strictyaml.Describe
	valueOf  = strictyaml.ValueOf
)

// commands decodes run: steps. Only --set vars and pipeline env are resolved; any other
// ${VAR} is left for the shell on the worker (e.g. ${SLUICE_SHARD_INDEX}).
func (d *decoder) commands(path string, n *yaml.Node) []string {
	nodes, _ := d.Items(path, n)
	out := make([]string, len(nodes))
	for i, item := range nodes {
		out[i], _ = expand(item.Value, d.runLookup, false)
	}
	return out
}

func (d *decoder) int32(path string, n *yaml.Node, lo, hi int64) int32 {
	v, _ := d.Int(path, n, lo, hi)
	return int32(v)
}

// number decodes a float; check returns "" or what is wrong with the value.
func (d *decoder) number(path string, n *yaml.Node, check func(float64) string) float64 {
	v, _ := d.Float(path, n, check)
	return v
}

// duration decodes a Go duration ("90s", "10m", "1h30m"); zero is allowed only when
// allowZero, negative never.
func (d *decoder) duration(path string, n *yaml.Node, allowZero bool) *durationpb.Duration {
	v, ok := d.Duration(path, n, allowZero)
	if !ok {
		return nil
	}
	return durationpb.New(v)
}

// token decodes a name that becomes a NATS subject token or KV key.
func (d *decoder) token(path string, n *yaml.Node, what string) string {
	s, ok := d.Scalar(path, n)
	if ok && !isToken(s) {
		d.Errorf(resolve(n), path, "invalid %s %q: use only letters, digits, '-' and '_' (it becomes a NATS subject token)", what, s)
	}
	return s
}

// durationUpTo is duration with an upper bound.
func (d *decoder) durationUpTo(path string, n *yaml.Node, allowZero bool, limit time.Duration) *durationpb.Duration {
	v := d.duration(path, n, allowZero)
	if v != nil && v.AsDuration() > limit {
		d.Errorf(resolve(n), path, "duration %s is above the limit of %s", v.AsDuration(), limit)
		return nil
	}
	return v
}

// pool reads a pool name: a lowercase token, since it names a consumer and the credentials
// of the workers that serve it.
func (d *decoder) pool(path string, n *yaml.Node) string {
	s, ok := d.Scalar(path, n)
	if ok && !sluicev1.IsName(s) {
		d.Errorf(resolve(n), path, "invalid pool %q: use lowercase letters, digits, '-' and '_', at most 64, starting with a letter or digit (it names a NATS consumer)", s)
	}
	return s
}

// approval reads `approval: required` or `approval: {required: true, by: [...]}`; by names
// who may approve: principals (role:name), roles, or groups of the coordinator's policy.
func (d *decoder) approval(path string, n *yaml.Node, s *sluicev1.StageSpec) {
	if resolve(n).Kind == yaml.MappingNode {
		required := true
		d.Fields(n, path, "approval", []field{
			{Name: "required", Fn: func(path string, _, v *yaml.Node) { required = d.Bool(path, v) }},
			{Name: "by", Fn: func(path string, _, v *yaml.Node) {
				nodes, paths := d.Items(path, v)
				for i, item := range nodes {
					who := d.Str(paths[i], item)
					if !isPrincipal(who) {
						d.Errorf(item, paths[i], "invalid approver %q: name a role (approver), a principal (approver:alice) or a group of the fleet's policy", who)
					}
					s.ApprovalBy = append(s.ApprovalBy, who)
				}
			}},
		})
		if required {
			s.Approval = "required"
		} else if len(s.ApprovalBy) > 0 {
			d.Errorf(resolve(n), join(path, "by"), "approvers are named but required is false: drop by, or require the approval")
		}
		return
	}
	a, ok := d.Scalar(path, n)
	if ok && a != "required" && a != "" {
		d.Errorf(resolve(n), path, "%q is not allowed: write `approval: required` to wait for `sluice approve`, `approval: {required: true, by: [release-managers]}` to name who may, or leave it out", a)
		return
	}
	s.Approval = a
}

// isPrincipal accepts role, role:name and group names: lowercase tokens joined by one ':'.
func isPrincipal(s string) bool {
	role, name, hasName := strings.Cut(s, ":")
	return sluicev1.IsName(role) && (!hasName || sluicev1.IsName(name))
}
