// Package strictyaml decodes the YAML files users write (pipelines, contracts, journeys,
// governance rules, worker secrets, the fleet's policy) strictly and all at once: an
// unknown field (with the closest known one suggested), a duplicate key, a value of the
// wrong shape or type, a number out of range, a bad duration: each is an *Error naming the
// file, line, column and field, and every problem of a file is reported, not the first.
//
// A format walks the yaml.Node tree with a Decoder, field by field (Fields, Str, Int,
// Duration, ...); what a format's values mean (${VAR} substitution, names, cross-field
// rules) stays with the format.
package strictyaml

import (
	"errors"
	"fmt"
	"io"
	"math"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// DefaultMaxNodes bounds the YAML values of one file, counting an anchor once per use, so
// that a few anchors cannot make a decoder walk (and report on) billions of values.
const DefaultMaxNodes = 100_000

// Decoder collects the problems of one file as its tree is walked.
type Decoder struct {
	File string
	// Kind is wrapped by every Error of the file (see Error.Kind).
	Kind error
	// Expand, when set, substitutes the ${VAR} references of a scalar (Scalar and what
	// builds on it), returning what is wrong with them.
	Expand func(s string) (string, []string)
	errs   Errors
}

// Format describes a file format for the messages about a whole file.
type Format struct {
	// Name is what a file of the format is called: "pipeline file", "journey".
	Name string
	// Needs says what its top-level mapping holds: "version, name and stages".
	Needs string
	// MaxNodes bounds the file's values (0: DefaultMaxNodes).
	MaxNodes int
}

// Root parses data as exactly one YAML document whose top is a mapping. On a syntax error,
// an empty file, a second document, a file too large or a top that is not a mapping, the
// problem is recorded and Root returns nil.
func (d *Decoder) Root(data []byte, f Format) *yaml.Node {
	dec := yaml.NewDecoder(strings.NewReader(string(data)))
	var doc yaml.Node
	empty := fmt.Sprintf("empty %s: it needs %s", f.Name, f.Needs)
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			d.add(&Error{Line: 1, Column: 1, Msg: empty})
		} else {
			d.add(d.syntaxError(err))
		}
		return nil
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case errors.Is(err, io.EOF):
	case err != nil:
		d.add(d.syntaxError(err))
		return nil
	default:
		d.add(&Error{Line: extra.Line, Column: extra.Column, Msg: fmt.Sprintf("a %s holds one YAML document: remove the second one (after ---)", f.Name)})
		return nil
	}
	if len(doc.Content) == 0 {
		d.add(&Error{Line: 1, Column: 1, Msg: empty})
		return nil
	}
	root := Resolve(doc.Content[0])
	limit := f.MaxNodes
	if limit <= 0 {
		limit = DefaultMaxNodes
	}
	if size := expandedSize(root, map[*yaml.Node]int{}, limit); size > limit {
		d.Errorf(root, "", "%s too large: %d YAML values once anchors are expanded, the limit is %d", f.Name, size, limit)
		return nil
	}
	if root.Kind != yaml.MappingNode {
		d.Errorf(root, "", "a %s is a mapping with %s, got %s", f.Name, f.Needs, Describe(root))
		return nil
	}
	return root
}

// yamlLine extracts the line yaml.v3 puts in its syntax errors ("yaml: line 3: ...").
var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

func (d *Decoder) syntaxError(err error) *Error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	e := &Error{}
	if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
		e.Line, _ = strconv.Atoi(m[1])
		msg = m[2]
	}
	e.Msg = "invalid YAML: " + strings.ReplaceAll(msg, "\n", " ")
	return e
}

// expandedSize counts the nodes of n with every alias expanded, stopping past limit. Each
// anchored node is counted once; yaml.v3 already rejects an anchor that contains itself.
func expandedSize(n *yaml.Node, memo map[*yaml.Node]int, limit int) int {
	n = Resolve(n)
	if size, ok := memo[n]; ok {
		return size
	}
	size := 1
	for _, c := range n.Content {
		size += expandedSize(c, memo, limit)
		if size > limit {
			break
		}
	}
	memo[n] = size
	return size
}

func (d *Decoder) add(e *Error) {
	e.File, e.Kind = d.File, d.Kind
	d.errs = append(d.errs, e)
}

// Errorf records a problem at n's position; field is its path (may be empty).
func (d *Decoder) Errorf(n *yaml.Node, field, format string, args ...any) {
	d.add(&Error{Line: n.Line, Column: n.Column, Field: field, Msg: fmt.Sprintf(format, args...)})
}

// Failf records a problem of the whole file, with no position: it could not be read.
func (d *Decoder) Failf(format string, args ...any) {
	d.add(&Error{Msg: fmt.Sprintf(format, args...)})
}

// Problems is how many problems were recorded so far.
func (d *Decoder) Problems() int { return len(d.errs) }

// Err is every problem recorded: nil, an *Error, or Errors sorted by position.
func (d *Decoder) Err() error { return d.errs.Err() }

// Field is one known key of a mapping and what to do with its value; path is the value's
// field path.
type Field struct {
	Name string
	Fn   func(path string, key, val *yaml.Node)
}

// Join appends a key to a field path.
func Join(path, key string) string {
	if path == "" {
		return Printable(key)
	}
	return path + "." + Printable(key)
}

// Index appends a list index to a field path: "steps[2]".
func Index(path string, i int) string { return fmt.Sprintf("%s[%d]", path, i) }

var plain = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// Printable quotes a user-written name unless it is a plain token, so that a message stays
// on one line and "a.b" cannot pass for a path.
func Printable(name string) string {
	if plain.MatchString(name) {
		return name
	}
	return strconv.Quote(name)
}

// Resolve follows aliases, so anchors work wherever a value is expected.
func Resolve(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

// IsNull reports a YAML null (~, null, or nothing).
func IsNull(n *yaml.Node) bool {
	n = Resolve(n)
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// Describe names what a value is, for messages: a mapping, a list, "the text".
func Describe(n *yaml.Node) string {
	n = Resolve(n)
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

// ValueOf returns the value of key in mapping n, or nil.
func ValueOf(n *yaml.Node, key string) *yaml.Node {
	n = Resolve(n)
	if n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if k := Resolve(n.Content[i]); k.Kind == yaml.ScalarNode && k.Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

// Pairs checks that n is a mapping (null counts as empty) with plain keys and no
// duplicates, and calls fn for each entry in file order.
func (d *Decoder) Pairs(n *yaml.Node, path string, fn func(name string, key, val *yaml.Node)) bool {
	return d.Entries(n, path, "key", "remove one", fn)
}

// Entries is Pairs for a mapping whose keys name things (stages, contracts): a duplicate
// is a "duplicate <noun>", and todo says what to do about it.
func (d *Decoder) Entries(n *yaml.Node, path, noun, todo string, fn func(name string, key, val *yaml.Node)) bool {
	n = Resolve(n)
	if IsNull(n) {
		return true
	}
	if n.Kind != yaml.MappingNode {
		d.Errorf(n, path, "must be a mapping (key: value), got %s", Describe(n))
		return false
	}
	seen := make(map[string]int, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		key, val := Resolve(n.Content[i]), n.Content[i+1]
		if key.Kind != yaml.ScalarNode {
			d.Errorf(key, path, "keys must be plain names, got %s", Describe(key))
			continue
		}
		if key.ShortTag() == "!!merge" {
			d.Errorf(key, path, "merge keys (<<) are not supported: write the fields out")
			continue
		}
		if first, dup := seen[key.Value]; dup {
			d.Errorf(key, Join(path, key.Value), "duplicate %s %q (first defined at line %d): %s", noun, key.Value, first, todo)
			continue
		}
		seen[key.Value] = key.Line
		fn(key.Value, key, val)
	}
	return true
}

// Fields decodes a mapping of known keys; what names the mapping in messages ("stage",
// "rollout"). An unknown key is an error that suggests the closest known one.
func (d *Decoder) Fields(n *yaml.Node, path, what string, known []Field) {
	d.Pairs(n, path, func(name string, key, val *yaml.Node) {
		for _, f := range known {
			if f.Name == name {
				f.Fn(Join(path, name), key, val)
				return
			}
		}
		names := make([]string, len(known))
		for i, f := range known {
			names[i] = f.Name
		}
		d.Errorf(key, Join(path, name), "unknown field %q in %s %s", name, what, Hint(name, names, "known fields"))
	})
}

// Hint is "(did you mean "x"?)" when a candidate is close to s, else the whole list.
func Hint(s string, candidates []string, label string) string {
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
		quoted[i] = Printable(c)
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

// Documents parses data as a stream of YAML documents (separated by ---), each a mapping,
// for formats that hold one item per document. Empty documents are skipped; a file with
// none is a problem. On a problem it is recorded and the documents before it are returned.
func (d *Decoder) Documents(data []byte, f Format) []*yaml.Node {
	limit := f.MaxNodes
	if limit <= 0 {
		limit = DefaultMaxNodes
	}
	dec := yaml.NewDecoder(strings.NewReader(string(data)))
	var docs []*yaml.Node
	size := 0
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			d.add(d.syntaxError(err))
			return docs
		}
		if len(doc.Content) == 0 {
			continue
		}
		root := Resolve(doc.Content[0])
		if size += expandedSize(root, map[*yaml.Node]int{}, limit); size > limit {
			d.Errorf(root, "", "%s too large: over %d YAML values once anchors are expanded", f.Name, limit)
			return docs
		}
		if root.Kind != yaml.MappingNode {
			d.Errorf(root, "", "each document of a %s is a mapping with %s, got %s", f.Name, f.Needs, Describe(root))
			continue
		}
		docs = append(docs, root)
	}
	if len(docs) == 0 && d.Problems() == 0 {
		d.add(&Error{Line: 1, Column: 1, Msg: fmt.Sprintf("empty %s: it needs %s", f.Name, f.Needs)})
	}
	return docs
}
