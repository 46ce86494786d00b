package strictyaml

import (
	"math"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Scalar returns the text of a scalar value (null is ""), substituted by Expand when set.
// ok is false when the value is not a scalar or its references are wrong (recorded).
func (d *Decoder) Scalar(path string, n *yaml.Node) (s string, ok bool) {
	n = Resolve(n)
	if n.Kind != yaml.ScalarNode {
		d.Errorf(n, path, "must be a single value, got %s", Describe(n))
		return "", false
	}
	if IsNull(n) {
		return "", true
	}
	if d.Expand == nil {
		return n.Value, true
	}
	s, problems := d.Expand(n.Value)
	for _, p := range problems {
		d.Errorf(n, path, "%s", p)
	}
	return s, len(problems) == 0
}

// Str is Scalar without ok: "" for a value that is wrong (recorded).
func (d *Decoder) Str(path string, n *yaml.Node) string {
	s, _ := d.Scalar(path, n)
	return s
}

// Items returns the elements of a list with the path of each, or the value itself when it
// is a single string; null is an empty list. Every element must be a string.
func (d *Decoder) Items(path string, n *yaml.Node) ([]*yaml.Node, []string) {
	n = Resolve(n)
	switch {
	case IsNull(n):
		return nil, nil
	case n.Kind == yaml.ScalarNode:
		return []*yaml.Node{n}, []string{path}
	case n.Kind != yaml.SequenceNode:
		d.Errorf(n, path, "must be a list of strings or one string, got %s", Describe(n))
		return nil, nil
	}
	nodes := make([]*yaml.Node, 0, len(n.Content))
	paths := make([]string, 0, len(n.Content))
	for i, item := range n.Content {
		item, ipath := Resolve(item), Index(path, i)
		if item.Kind != yaml.ScalarNode || IsNull(item) {
			d.Errorf(item, ipath, "must be a string, got %s", Describe(item))
			continue
		}
		nodes, paths = append(nodes, item), append(paths, ipath)
	}
	return nodes, paths
}

// Strs decodes a list of strings; a single string stands for a list of one.
func (d *Decoder) Strs(path string, n *yaml.Node) []string {
	nodes, paths := d.Items(path, n)
	out := make([]string, len(nodes))
	for i, item := range nodes {
		out[i] = d.Str(paths[i], item)
	}
	return out
}

// List calls fn for each element of a list (null is empty), with its path.
func (d *Decoder) List(path string, n *yaml.Node, fn func(path string, i int, item *yaml.Node)) {
	n = Resolve(n)
	if IsNull(n) {
		return
	}
	if n.Kind != yaml.SequenceNode {
		d.Errorf(n, path, "must be a list, got %s", Describe(n))
		return
	}
	for i, item := range n.Content {
		fn(Index(path, i), i, Resolve(item))
	}
}

// StringMap decodes a mapping of strings; keyOK, when set, checks each key and keyRule says
// what a key must look like.
func (d *Decoder) StringMap(path string, n *yaml.Node, keyOK func(string) bool, keyRule string) map[string]string {
	out := map[string]string{}
	d.Pairs(n, path, func(name string, key, val *yaml.Node) {
		if keyOK != nil && !keyOK(name) {
			d.Errorf(key, Join(path, name), "invalid name %q: %s", name, keyRule)
			return
		}
		out[name] = d.Str(Join(path, name), val)
	})
	return out
}

// Int decodes a whole number in [lo, hi].
func (d *Decoder) Int(path string, n *yaml.Node, lo, hi int64) (int64, bool) {
	s, ok := d.Scalar(path, n)
	if !ok {
		return 0, false
	}
	v, err := strconv.ParseInt(s, 0, 64)
	if err != nil {
		d.Errorf(Resolve(n), path, "%q is not a whole number", s)
		return 0, false
	}
	if v < lo || v > hi {
		d.Errorf(Resolve(n), path, "%d is out of range: must be %s", v, rangeText(lo, hi))
		return 0, false
	}
	return v, true
}

func rangeText(lo, hi int64) string {
	if hi == math.MaxInt32 || hi == math.MaxInt64 {
		return "at least " + strconv.FormatInt(lo, 10)
	}
	return strconv.FormatInt(lo, 10) + ".." + strconv.FormatInt(hi, 10)
}

// Float decodes a finite number; check, when set, returns what is wrong with the value ("").
func (d *Decoder) Float(path string, n *yaml.Node, check func(float64) string) (float64, bool) {
	s, ok := d.Scalar(path, n)
	if !ok {
		return 0, false
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		d.Errorf(Resolve(n), path, "%q is not a number", s)
		return 0, false
	}
	if check != nil {
		if msg := check(v); msg != "" {
			d.Errorf(Resolve(n), path, "%v is out of range: %s", v, msg)
			return 0, false
		}
	}
	return v, true
}

// Bool decodes true or false.
func (d *Decoder) Bool(path string, n *yaml.Node) bool {
	s, ok := d.Scalar(path, n)
	if !ok {
		return false
	}
	switch s {
	case "true":
		return true
	case "false":
		return false
	}
	d.Errorf(Resolve(n), path, "%q is not a boolean: use true or false", s)
	return false
}

// Duration decodes a Go duration ("90s", "10m", "1h30m"); zero only when allowZero,
// negative never.
func (d *Decoder) Duration(path string, n *yaml.Node, allowZero bool) (time.Duration, bool) {
	s, ok := d.Scalar(path, n)
	if !ok {
		return 0, false
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		d.Errorf(Resolve(n), path, "invalid duration %q: use a number with a unit, like \"90s\", \"10m\" or \"1h30m\"", s)
		return 0, false
	}
	switch {
	case v < 0:
		d.Errorf(Resolve(n), path, "duration %q must not be negative", s)
		return 0, false
	case v == 0 && !allowZero:
		d.Errorf(Resolve(n), path, "duration %q must be positive", s)
		return 0, false
	}
	return v, true
}

// OneOf decodes a string that must be one of allowed.
func (d *Decoder) OneOf(path string, n *yaml.Node, allowed ...string) string {
	s, ok := d.Scalar(path, n)
	if !ok {
		return ""
	}
	for _, a := range allowed {
		if s == a {
			return s
		}
	}
	d.Errorf(Resolve(n), path, "%q is not allowed: use one of %s", s, strings.Join(allowed, ", "))
	return ""
}
