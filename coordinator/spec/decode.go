package spec

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"gopkg.in/yaml.v3"

	sluicev1 "github.com/sluice-ci/sluice/proto/sluice/v1"
)

// decoder walks a yaml.Node tree, so that every problem can name its line, and collects every
// problem instead of stopping at the first.
type decoder struct {
	file string
	errs Errors
	// lookup resolves ${VAR} outside run: (--set, pipeline env, process env); runLookup inside
	// run: (--set, pipeline env), where the rest is left for the worker's shell.
	lookup, runLookup func(string) (string, bool)
}

func (d *decoder) errorf(n *yaml.Node, field, format string, args ...any) {
	d.errs = append(d.errs, &Error{File: d.file, Line: n.Line, Column: n.Column, Field: field, Msg: fmt.Sprintf(format, args...)})
}

// field is one known key of a mapping and what to do with its value.
type field struct {
	name string
	fn   func(path string, key, val *yaml.Node)
}

// join appends a key to a dotted field path.
func join(path, key string) string {
	if path == "" {
		return printable(key)
	}
	return path + "." + printable(key)
}

// printable quotes a user-written name unless it is a plain token, so that a message stays on
// one line and "a.b" cannot pass for a path.
func printable(name string) string {
	if isToken(name) {
		return name
	}
	return strconv.Quote(name)
}

// resolve follows aliases, so anchors work wherever a value is expected.
func resolve(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" }

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if len(n.Value) > 40 {
			return fmt.Sprintf("%q...", n.Value[:40])
		}
		return fmt.Sprintf("%q", n.Value)
	}
	return "nothing"
}

// pairs checks that n is a mapping (null counts as empty) with string keys and no duplicates,
// and calls fn for each entry in file order.
func (d *decoder) pairs(n *yaml.Node, path string, fn func(name string, key, val *yaml.Node)) bool {
	n = resolve(n)
	if isNull(n) {
		return true
	}
	if n.Kind != yaml.MappingNode {
		d.errorf(n, path, "must be a mapping (key: value), got %s", describe(n))
		return false
	}
	seen := make(map[string]int, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		key, val := resolve(n.Content[i]), n.Content[i+1]
		if key.Kind != yaml.ScalarNode {
			d.errorf(key, path, "keys must be plain names, got %s", describe(key))
			continue
		}
		if key.ShortTag() == "!!merge" {
			d.errorf(key, path, "merge keys (<<) are not supported: write the fields out")
			continue
		}
		if first, dup := seen[key.Value]; dup {
			what, todo := "key", "remove one"
			if path == "stages" {
				what, todo = "stage", "rename or remove one"
			}
			d.errorf(key, join(path, key.Value), "duplicate %s %q (first defined at line %d): %s", what, key.Value, first, todo)
			continue
		}
		seen[key.Value] = key.Line
		fn(key.Value, key, val)
	}
	return true
}

// fields decodes a mapping of known keys; what names it in messages ("stage", "rollout").
// An unknown key is an error that suggests the closest known one.
func (d *decoder) fields(n *yaml.Node, path, what string, known []field) {
	d.pairs(n, path, func(name string, key, val *yaml.Node) {
		for _, f := range known {
			if f.name == name {
				f.fn(join(path, name), key, val)
				return
			}
		}
		names := make([]string, len(known))
		for i, f := range known {
			names[i] = f.name
		}
		d.errorf(key, join(path, name), "unknown field %q in %s %s", name, what, hint(name, names, "known fields"))
	})
}

// hint is "(did you mean "x"?)" when a candidate is close to s, else the whole list.
func hint(s string, candidates []string, label string) string {
	best, bestDist := "", math.MaxInt
	for _, c := range candidates {
		if dist := editDistance(strings.ToLower(s), c); dist < bestDist {
			best, bestDist = c, dist
		}
	}
	if best != "" && bestDist <= 2 && 3*bestDist <= len(s) {
		return fmt.Sprintf("(did you mean %q?)", best)
	}
	quoted := make([]string, len(candidates))
	for i, c := range candidates {
		quoted[i] = printable(c)
	}
	return fmt.Sprintf("(%s: %s)", label, strings.Join(quoted, ", "))
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// scalar returns the text of a scalar value (null is ""), with ${VAR} resolved strictly.
func (d *decoder) scalar(n *yaml.Node, path string) (string, bool) {
	n = resolve(n)
	if n.Kind != yaml.ScalarNode {
		d.errorf(n, path, "must be a single value, got %s", describe(n))
		return "", false
	}
	if isNull(n) {
		return "", true
	}
	s, problems := expand(n.Value, d.lookup, true)
	for _, p := range problems {
		d.errorf(n, path, "%s", p)
	}
	return s, len(problems) == 0
}

func (d *decoder) str(path string, n *yaml.Node) string {
	s, _ := d.scalar(n, path)
	return s
}

// items returns the elements of a list, or the value itself when it is a single string, with
// the path of each; null is an empty list.
func (d *decoder) items(path string, n *yaml.Node) ([]*yaml.Node, []string) {
	n = resolve(n)
	switch {
	case isNull(n):
		return nil, nil
	case n.Kind == yaml.ScalarNode:
		return []*yaml.Node{n}, []string{path}
	case n.Kind != yaml.SequenceNode:
		d.errorf(n, path, "must be a list of strings or one string, got %s", describe(n))
		return nil, nil
	}
	nodes := make([]*yaml.Node, 0, len(n.Content))
	paths := make([]string, 0, len(n.Content))
	for i, item := range n.Content {
		item, ipath := resolve(item), fmt.Sprintf("%s[%d]", path, i)
		if item.Kind != yaml.ScalarNode || isNull(item) {
			d.errorf(item, ipath, "must be a string, got %s", describe(item))
			continue
		}
		nodes, paths = append(nodes, item), append(paths, ipath)
	}
	return nodes, paths
}

// strs decodes a list of strings; a single string stands for a list of one.
func (d *decoder) strs(path string, n *yaml.Node) []string {
	nodes, paths := d.items(path, n)
	out := make([]string, len(nodes))
	for i, item := range nodes {
		out[i] = d.str(paths[i], item)
	}
	return out
}

// commands decodes run: steps. Only --set vars and pipeline env are resolved; any other
// ${VAR} is left for the shell on the worker (e.g. ${SLUICE_SHARD_INDEX}).
func (d *decoder) commands(path string, n *yaml.Node) []string {
	nodes, _ := d.items(path, n)
	out := make([]string, len(nodes))
	for i, item := range nodes {
		out[i], _ = expand(item.Value, d.runLookup, false)
	}
	return out
}

// stringMap decodes a mapping of strings (env:, queries:); keyOK, when set, checks each key
// and keyRule says what a key must look like.
func (d *decoder) stringMap(path string, n *yaml.Node, keyOK func(string) bool, keyRule string) map[string]string {
	out := map[string]string{}
	d.pairs(n, path, func(name string, key, val *yaml.Node) {
		if keyOK != nil && !keyOK(name) {
			d.errorf(key, join(path, name), "invalid name %q: %s", name, keyRule)
			return
		}
		out[name] = d.str(join(path, name), val)
	})
	return out
}

// integer decodes a whole number in [lo, hi].
func (d *decoder) integer(path string, n *yaml.Node, lo, hi int64) (int64, bool) {
	s, ok := d.scalar(n, path)
	if !ok {
		return 0, false
	}
	v, err := strconv.ParseInt(s, 0, 64)
	if err != nil {
		d.errorf(resolve(n), path, "%q is not a whole number", s)
		return 0, false
	}
	if v < lo || v > hi {
		d.errorf(resolve(n), path, "%d is out of range: must be %s", v, rangeText(lo, hi))
		return 0, false
	}
	return v, true
}

func rangeText(lo, hi int64) string {
	if hi == math.MaxInt32 || hi == math.MaxInt64 {
		return fmt.Sprintf("at least %d", lo)
	}
	return fmt.Sprintf("%d..%d", lo, hi)
}

func (d *decoder) int32(path string, n *yaml.Node, lo, hi int64) int32 {
	v, _ := d.integer(path, n, lo, hi)
	return int32(v)
}

// number decodes a float; check returns "" or what is wrong with the value.
func (d *decoder) number(path string, n *yaml.Node, check func(float64) string) float64 {
	s, ok := d.scalar(n, path)
	if !ok {
		return 0
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		d.errorf(resolve(n), path, "%q is not a number", s)
		return 0
	}
	if check != nil {
		if msg := check(v); msg != "" {
			d.errorf(resolve(n), path, "%v is out of range: %s", v, msg)
			return 0
		}
	}
	return v
}

func (d *decoder) boolean(path string, n *yaml.Node) bool {
	s, ok := d.scalar(n, path)
	if !ok {
		return false
	}
	switch s {
	case "true":
		return true
	case "false":
		return false
	}
	d.errorf(resolve(n), path, "%q is not a boolean: use true or false", s)
	return false
}

// duration decodes a Go duration ("90s", "10m", "1h30m"); zero is allowed only when
// allowZero, negative never.
func (d *decoder) duration(path string, n *yaml.Node, allowZero bool) *durationpb.Duration {
	s, ok := d.scalar(n, path)
	if !ok {
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		d.errorf(resolve(n), path, "invalid duration %q: use a number with a unit, like \"90s\", \"10m\" or \"1h30m\"", s)
		return nil
	}
	switch {
	case v < 0:
		d.errorf(resolve(n), path, "duration %q must not be negative", s)
		return nil
	case v == 0 && !allowZero:
		d.errorf(resolve(n), path, "duration %q must be positive", s)
		return nil
	}
	return durationpb.New(v)
}

// oneOf decodes a string that must be one of allowed.
func (d *decoder) oneOf(path string, n *yaml.Node, allowed ...string) string {
	s, ok := d.scalar(n, path)
	if !ok {
		return ""
	}
	for _, a := range allowed {
		if s == a {
			return s
		}
	}
	d.errorf(resolve(n), path, "%q is not allowed: use one of %s", s, strings.Join(allowed, ", "))
	return ""
}

// token decodes a name that becomes a NATS subject token or KV key.
func (d *decoder) token(path string, n *yaml.Node, what string) string {
	s, ok := d.scalar(n, path)
	if ok && !isToken(s) {
		d.errorf(resolve(n), path, "invalid %s %q: use only letters, digits, '-' and '_' (it becomes a NATS subject token)", what, s)
	}
	return s
}

// durationUpTo is duration with an upper bound.
func (d *decoder) durationUpTo(path string, n *yaml.Node, allowZero bool, limit time.Duration) *durationpb.Duration {
	v := d.duration(path, n, allowZero)
	if v != nil && v.AsDuration() > limit {
		d.errorf(resolve(n), path, "duration %s is above the limit of %s", v.AsDuration(), limit)
		return nil
	}
	return v
}

// pool reads a pool name: a lowercase token, since it names a consumer and the credentials
// of the workers that serve it.
func (d *decoder) pool(path string, n *yaml.Node) string {
	s, ok := d.scalar(n, path)
	if ok && !sluicev1.IsName(s) {
		d.errorf(resolve(n), path, "invalid pool %q: use lowercase letters, digits, '-' and '_', at most 64, starting with a letter or digit (it names a NATS consumer)", s)
	}
	return s
}

// approval reads `approval: required` or `approval: {required: true, by: [...]}`; by names
// who may approve: principals (role:name), roles, or groups of the coordinator's policy.
func (d *decoder) approval(path string, n *yaml.Node, s *sluicev1.StageSpec) {
	if resolve(n).Kind == yaml.MappingNode {
		required := true
		d.fields(n, path, "approval", []field{
			{"required", func(path string, _, v *yaml.Node) { required = d.boolean(path, v) }},
			{"by", func(path string, _, v *yaml.Node) {
				nodes, paths := d.items(path, v)
				for i, item := range nodes {
					who := d.str(paths[i], item)
					if !isPrincipal(who) {
						d.errorf(item, paths[i], "invalid approver %q: name a role (approver), a principal (approver:alice) or a group of the fleet's policy", who)
					}
					s.ApprovalBy = append(s.ApprovalBy, who)
				}
			}},
		})
		if required {
			s.Approval = "required"
		} else if len(s.ApprovalBy) > 0 {
			d.errorf(resolve(n), join(path, "by"), "approvers are named but required is false: drop by, or require the approval")
		}
		return
	}
	a, ok := d.scalar(n, path)
	if ok && a != "required" && a != "" {
		d.errorf(resolve(n), path, "%q is not allowed: write `approval: required` to wait for `sluice approve`, `approval: {required: true, by: [release-managers]}` to name who may, or leave it out", a)
		return
	}
	s.Approval = a
}

// isPrincipal accepts role, role:name and group names: lowercase tokens joined by one ':'.
func isPrincipal(s string) bool {
	role, name, hasName := strings.Cut(s, ":")
	return sluicev1.IsName(role) && (!hasName || sluicev1.IsName(name))
}
