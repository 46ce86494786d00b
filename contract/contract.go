// Package contract runs HTTP contracts against a service: YAML files that each describe a
// named sequence of requests and what the responses must look like (status, headers, a
// JSON Schema 2020-12 for the body, matchers on JSON paths), with captures that feed values
// of one response into later requests. The engine needs no NATS, bus, worker or wire types:
// package workers/contract adapts it to the contract stage kind, and `sluice contract check`
// runs it locally.
package contract

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"gopkg.in/yaml.v3"

	"github.com/sluice-ci/sluice/internal/strictyaml"
)

// DefaultTimeout bounds each request of a contract that sets no timeout.
const DefaultTimeout = 10 * time.Second

// Contract is a named sequence of requests against one service.
type Contract struct {
	Name        string
	Description string
	File        string // the file it was read from, as given
	Line        int
	// Vars are defaults of ${VAR} references; the environment and captures override them.
	Vars    map[string]string
	Timeout time.Duration // per request; 0: the runner's
	Steps   []*Step
}

// Step is one request and its expectations.
type Step struct {
	Name    string
	Line    int
	Request Request
	Expect  Expect
	// Capture names values of the response body (name -> JSON path) for ${name} in later
	// steps.
	Capture map[string]string
}

// Request is what a step sends. String values may hold ${VAR} references.
type Request struct {
	Method  string
	Path    string // relative to the target: "/api/payments"
	Headers map[string]string
	// JSON is a body sent as JSON; a string that is exactly "${VAR}" becomes the variable's
	// value with its JSON type (a captured number stays a number).
	JSON    any
	HasJSON bool
	Body    string // a raw body, when JSON is not set
}

// Expect is what a step's response must satisfy.
type Expect struct {
	Status  []int // any of; empty: any 2xx
	Headers []FieldMatcher
	Body    []FieldMatcher
	Schema  *jsonschema.Schema
	// SchemaSource names the schema in messages: the schema file, or "inline schema".
	SchemaSource string
}

// FieldMatcher checks one JSON path of the body, or one header.
type FieldMatcher struct {
	Path   string
	Line   int
	Column int
	Matcher
	// field is the matcher's path in the file, for messages.
	field string
}

// Matcher is a set of checks on one value; every set check must hold.
type Matcher struct {
	Regex         *regexp.Regexp
	Enum          []any
	Type          string // string, number, integer, boolean, object, array, null
	Equals        any    // compared as JSON; strings may hold ${VAR}
	HasEquals     bool
	EqualsRequest string // a JSON path into the request's JSON body
	Present       *bool  // true: must be there; false: must be absent
}

var (
	varName   = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	jsonTypes = []string{"string", "number", "integer", "boolean", "object", "array", "null"}
	methods   = []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}
)

// Error is a problem in a contract file: "FILE:LINE:COL: FIELD: MSG", the error type of
// every Sluice file format. Every Error of a contract file wraps ErrInvalid.
type Error = strictyaml.Error

// Problems returns the problems of contract files in err one by one (nil when err is not
// about their content: a pattern that matches nothing, a file that cannot be read).
func Problems(err error) []*Error { return strictyaml.List(err) }

// LoadFiles reads the contracts of the files matching patterns (filepath.Match globs)
// relative to dir, in pattern order and then name order. A pattern that matches nothing is
// an error: a typo must not pass as "no contracts, nothing failed". Contract.File keeps the
// path relative to dir.
func LoadFiles(dir string, patterns []string) ([]*Contract, error) {
	if len(patterns) == 0 {
		return nil, fmt.Errorf("%w: no contract files given", ErrInvalid)
	}
	var files []string
	for _, p := range patterns {
		if dir != "" && !filepath.IsLocal(p) {
			return nil, fmt.Errorf("%w: contract pattern %q leaves the source tree", ErrInvalid, p)
		}
		matches, err := filepath.Glob(filepath.Join(dir, p))
		if err != nil {
			return nil, fmt.Errorf("%w: contract pattern %q: %w", ErrInvalid, p, err)
		}
		if len(matches) == 0 {
			return nil, fmt.Errorf("%w: contract pattern %q matches no file", ErrInvalid, p)
		}
		slices.Sort(matches)
		for _, m := range matches {
			rel := m
			if dir != "" {
				if rel, err = filepath.Rel(dir, m); err != nil {
					return nil, fmt.Errorf("contract file %s: %w", m, err)
				}
			}
			if !slices.Contains(files, rel) {
				files = append(files, rel)
			}
		}
	}
	var all []*Contract
	var errs strictyaml.Errors
	for _, f := range files {
		data, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			d := &strictyaml.Decoder{File: f, Kind: ErrInvalid}
			d.Failf("read contract file: %v", err)
			errs = append(errs, Problems(d.Err())...)
			continue
		}
		cs, err := Parse(f, filepath.Join(dir, f), data)
		if err != nil {
			errs = append(errs, Problems(err)...)
			continue
		}
		all = append(all, cs...)
	}
	if err := errs.Err(); err != nil {
		return nil, err
	}
	return all, nil
}

// contractFormat names the file format in messages about a whole file.
var contractFormat = strictyaml.Format{Name: "contract file", Needs: "name and steps"}

// Parse reads the contracts of one file: one YAML document per contract. name is how
// messages call the file; path locates schema_file references (relative to its directory).
// Every problem of the file is reported, each naming its line, column and field.
func Parse(name, path string, data []byte) ([]*Contract, error) {
	p := &parser{Decoder: &strictyaml.Decoder{File: name, Kind: ErrInvalid}, dir: filepath.Dir(path), base: path}
	var out []*Contract
	for _, doc := range p.Documents(data, contractFormat) {
		out = append(out, p.contract(doc))
	}
	if err := p.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

type parser struct {
	*strictyaml.Decoder
	dir, base string
	schemas   int
}

type field = strictyaml.Field

func set(name string, fn func(path string, v *yaml.Node)) field {
	return field{Name: name, Fn: func(path string, _, v *yaml.Node) { fn(path, v) }}
}

// str is a string value: a scalar that is not null.
func (p *parser) str(path string, n *yaml.Node) string {
	if strictyaml.IsNull(n) {
		p.Errorf(strictyaml.Resolve(n), path, "must be a string, got nothing")
		return ""
	}
	return p.Str(path, n)
}

// value decodes any YAML value as a JSON-compatible value.
func (p *parser) value(path string, n *yaml.Node) any {
	var v any
	if err := n.Decode(&v); err != nil {
		p.Errorf(n, path, "%v", err)
		return nil
	}
	j, err := toJSON(v)
	if err != nil {
		p.Errorf(n, path, "%v", err)
	}
	return j
}

func (p *parser) varNames(path string, n *yaml.Node) {
	p.Pairs(n, path, func(name string, k, _ *yaml.Node) {
		if !varName.MatchString(name) {
			p.Errorf(k, strictyaml.Join(path, name), "%q is not a variable name (letters, digits, _)", name)
		}
	})
}

func (p *parser) contract(n *yaml.Node) *Contract {
	c := &Contract{File: p.File, Line: n.Line, Vars: map[string]string{}}
	p.Fields(n, "", "contract", []field{
		set("name", func(path string, v *yaml.Node) { c.Name = p.str(path, v) }),
		set("description", func(path string, v *yaml.Node) { c.Description = p.str(path, v) }),
		set("vars", func(path string, v *yaml.Node) {
			c.Vars = p.StringMap(path, v, nil, "")
			p.varNames(path, v)
		}),
		set("timeout", func(path string, v *yaml.Node) { c.Timeout, _ = p.Duration(path, v, false) }),
		set("steps", func(path string, v *yaml.Node) {
			p.List(path, v, func(path string, i int, item *yaml.Node) { c.Steps = append(c.Steps, p.step(path, item, i+1)) })
		}),
	})
	if c.Name == "" {
		p.Errorf(n, "name", "missing: a contract needs a name")
	}
	if len(c.Steps) == 0 {
		p.Errorf(n, "steps", "no steps: contract %q needs at least one request", c.Name)
	}
	return c
}

func (p *parser) step(path string, n *yaml.Node, index int) *Step {
	s := &Step{Line: n.Line, Capture: map[string]string{}}
	var requestJSON *yaml.Node
	p.Fields(n, path, "step", []field{
		set("name", func(path string, v *yaml.Node) { s.Name = p.str(path, v) }),
		set("request", func(path string, v *yaml.Node) { s.Request, requestJSON = p.request(path, v) }),
		set("expect", func(path string, v *yaml.Node) { s.Expect = p.expect(path, v) }),
		set("capture", func(path string, v *yaml.Node) {
			s.Capture = p.StringMap(path, v, nil, "")
			p.varNames(path, v)
			p.Pairs(v, path, func(name string, _, val *yaml.Node) {
				if _, err := parsePath(s.Capture[name]); err != nil {
					p.Errorf(strictyaml.Resolve(val), strictyaml.Join(path, name), "%v", err)
				}
			})
		}),
	})
	if s.Name == "" {
		s.Name = fmt.Sprintf("step %d", index)
	}
	if s.Request.Path == "" {
		p.Errorf(n, strictyaml.Join(path, "request"), "missing request.path: step %q sends nothing", s.Name)
	}
	for _, m := range s.Expect.Body {
		if m.EqualsRequest != "" && requestJSON == nil {
			p.Errorf(&yaml.Node{Line: m.Line, Column: m.Column}, m.field, "equals_request needs a request with a json body")
		}
	}
	return s
}

func (p *parser) request(path string, n *yaml.Node) (Request, *yaml.Node) {
	r := Request{Method: "GET", Headers: map[string]string{}}
	var jsonNode *yaml.Node
	p.Fields(n, path, "request", []field{
		set("method", func(path string, v *yaml.Node) {
			r.Method = strings.ToUpper(p.str(path, v))
			if !slices.Contains(methods, r.Method) {
				p.Errorf(strictyaml.Resolve(v), path, "%q is not one of %s", strictyaml.Resolve(v).Value, strings.Join(methods, ", "))
			}
		}),
		set("path", func(path string, v *yaml.Node) {
			r.Path = p.str(path, v)
			if r.Path != "" && !strings.HasPrefix(r.Path, "/") {
				p.Errorf(strictyaml.Resolve(v), path, "%q must start with / (it is relative to the target URL)", r.Path)
			}
		}),
		set("headers", func(path string, v *yaml.Node) { r.Headers = p.StringMap(path, v, nil, "") }),
		set("json", func(path string, v *yaml.Node) { r.JSON, r.HasJSON, jsonNode = p.value(path, v), true, v }),
		set("body", func(path string, v *yaml.Node) { r.Body = p.str(path, v) }),
	})
	if r.HasJSON && r.Body != "" {
		p.Errorf(n, path, "give json or body, not both")
	}
	return r, jsonNode
}

func (p *parser) expect(path string, n *yaml.Node) Expect {
	var e Expect
	p.Fields(n, path, "expect", []field{
		set("status", func(path string, v *yaml.Node) {
			v = strictyaml.Resolve(v)
			items := []*yaml.Node{v}
			if v.Kind == yaml.SequenceNode {
				items = v.Content
			}
			for i, item := range items {
				ipath := path
				if v.Kind == yaml.SequenceNode {
					ipath = strictyaml.Index(path, i)
				}
				code, ok := p.Int(ipath, item, 100, 599)
				if ok {
					e.Status = append(e.Status, int(code))
				}
			}
		}),
		set("headers", func(path string, v *yaml.Node) { e.Headers = p.matchers(path, v, "header names") }),
		set("body", func(path string, v *yaml.Node) { e.Body = p.matchers(path, v, "JSON paths") }),
		set("schema", func(path string, v *yaml.Node) {
			doc := p.value(path, v)
			p.schemas++
			e.Schema, e.SchemaSource = p.compileSchema(path, v, doc, ""), "inline schema"
		}),
		set("schema_file", func(path string, v *yaml.Node) {
			file := p.str(path, v)
			e.Schema, e.SchemaSource = p.compileSchema(path, v, nil, file), file
		}),
	})
	for _, m := range e.Body {
		if _, err := parsePath(m.Path); err != nil {
			p.Errorf(&yaml.Node{Line: m.Line, Column: m.Column}, m.field, "%v", err)
		}
	}
	return e
}

// compileSchema compiles an inline schema document, or the schema file (relative to the
// contract's directory). Draft 2020-12 unless the schema says otherwise; formats such as
// date-time are asserted, not just annotations.
func (p *parser) compileSchema(path string, n *yaml.Node, doc any, file string) *jsonschema.Schema {
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	loc := file
	if file != "" {
		if !filepath.IsAbs(file) {
			loc = filepath.Join(p.dir, file)
		}
	} else {
		// Inline schemas get a location beside the contract file, so their relative $refs
		// resolve to the contract's directory.
		abs, err := filepath.Abs(fmt.Sprintf("%s.schema%d.json", p.base, p.schemas))
		if err != nil {
			p.Errorf(n, path, "%v", err)
			return nil
		}
		loc = abs
		if err := c.AddResource(loc, doc); err != nil {
			p.Errorf(n, path, "%v", err)
			return nil
		}
	}
	s, err := c.Compile(loc)
	if err != nil {
		p.Errorf(n, path, "%v", err)
		return nil
	}
	return s
}

// matchers reads an ordered mapping of path (or header name) -> matcher. A scalar or list
// instead of a matcher mapping means equals.
func (p *parser) matchers(path string, n *yaml.Node, keys string) []FieldMatcher {
	if r := strictyaml.Resolve(n); r.Kind != yaml.MappingNode && !strictyaml.IsNull(r) {
		p.Errorf(r, path, "must be a mapping of %s to matchers, got %s", keys, strictyaml.Describe(r))
		return nil
	}
	var out []FieldMatcher
	p.Pairs(n, path, func(name string, k, v *yaml.Node) {
		fpath := strictyaml.Join(path, name)
		fm := FieldMatcher{Path: name, Line: k.Line, Column: k.Column, field: fpath}
		if strictyaml.Resolve(v).Kind != yaml.MappingNode {
			fm.Equals, fm.HasEquals = p.value(fpath, v), true
		} else {
			fm.Matcher = p.matcher(fpath, v)
		}
		out = append(out, fm)
	})
	return out
}

func (p *parser) matcher(path string, n *yaml.Node) Matcher {
	var m Matcher
	p.Fields(n, path, "matcher", []field{
		set("regex", func(path string, v *yaml.Node) {
			re, err := regexp.Compile(p.str(path, v))
			if err != nil {
				p.Errorf(strictyaml.Resolve(v), path, "%v", err)
				return
			}
			m.Regex = re
		}),
		set("enum", func(path string, v *yaml.Node) {
			if r := strictyaml.Resolve(v); r.Kind != yaml.SequenceNode || len(r.Content) == 0 {
				p.Errorf(r, path, "must be a non-empty list of values, got %s", strictyaml.Describe(r))
				return
			}
			p.List(path, v, func(path string, _ int, item *yaml.Node) { m.Enum = append(m.Enum, p.value(path, item)) })
		}),
		set("type", func(path string, v *yaml.Node) { m.Type = p.OneOf(path, v, jsonTypes...) }),
		set("equals", func(path string, v *yaml.Node) { m.Equals, m.HasEquals = p.value(path, v), true }),
		set("equals_request", func(path string, v *yaml.Node) {
			m.EqualsRequest = p.str(path, v)
			if _, err := parsePath(m.EqualsRequest); m.EqualsRequest != "" && err != nil {
				p.Errorf(strictyaml.Resolve(v), path, "%v", err)
			}
		}),
		set("present", func(path string, v *yaml.Node) {
			b := p.Bool(path, v)
			m.Present = &b
		}),
	})
	if m.Present != nil && !*m.Present && (m.Regex != nil || m.Enum != nil || m.Type != "" || m.HasEquals || m.EqualsRequest != "") {
		p.Errorf(n, path, "present: false cannot be combined with checks of the value")
	}
	return m
}
