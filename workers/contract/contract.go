// Package contract runs HTTP contracts against a service: YAML files that each describe a
// named sequence of requests and what the responses must look like (status, headers, a
// JSON Schema 2020-12 for the body, matchers on JSON paths), with captures that feed values
// of one response into later requests. The engine needs no NATS; Handler adapts it to the
// contract stage kind and `sluice contract check` runs it locally.
package contract

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"gopkg.in/yaml.v3"
)

// ErrInvalid is wrapped by every error about a contract file's content.
var ErrInvalid = errors.New("invalid contract")

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
	Path string
	Line int
	Matcher
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

// ParseError is a problem in a contract file, with its position.
type ParseError struct {
	File string
	Line int
	Msg  string
}

func (e *ParseError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return e.File + ": " + e.Msg
}

func (e *ParseError) Unwrap() error { return ErrInvalid }

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
	var errs []error
	for _, f := range files {
		data, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			errs = append(errs, fmt.Errorf("read contract file: %w", err))
			continue
		}
		cs, err := Parse(f, filepath.Join(dir, f), data)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		all = append(all, cs...)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return all, nil
}

// Parse reads the contracts of one file: one YAML document per contract. name is how
// messages call the file; path locates schema_file references (relative to its directory).
func Parse(name, path string, data []byte) ([]*Contract, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	p := &parser{file: name, dir: filepath.Dir(path), base: path}
	var out []*Contract
	for {
		var doc yaml.Node
		if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return nil, &ParseError{File: name, Msg: "not YAML: " + err.Error()}
		}
		if len(doc.Content) == 0 {
			continue
		}
		if c := p.contract(doc.Content[0]); c != nil {
			out = append(out, c)
		}
	}
	if err := errors.Join(p.errs...); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, &ParseError{File: name, Msg: "no contract in the file"}
	}
	return out, nil
}

type parser struct {
	file, dir, base string
	errs            []error
	schemas         int
}

func (p *parser) errorf(n *yaml.Node, format string, args ...any) {
	p.errs = append(p.errs, &ParseError{File: p.file, Line: n.Line, Msg: fmt.Sprintf(format, args...)})
}

// fields walks a mapping, calling set for each key it knows and reporting the others.
func (p *parser) fields(n *yaml.Node, what string, set map[string]func(v *yaml.Node)) {
	if n.Kind != yaml.MappingNode {
		p.errorf(n, "%s: want a mapping", what)
		return
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		f, ok := set[k.Value]
		if !ok {
			known := make([]string, 0, len(set))
			for name := range set {
				known = append(known, name)
			}
			slices.Sort(known)
			p.errorf(k, "%s: unknown field %q (known: %s)", what, k.Value, strings.Join(known, ", "))
			continue
		}
		f(v)
	}
}

func (p *parser) str(n *yaml.Node, what string) string {
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		p.errorf(n, "%s: want a string", what)
		return ""
	}
	return n.Value
}

func (p *parser) strMap(n *yaml.Node, what string) map[string]string {
	m := map[string]string{}
	if n.Kind != yaml.MappingNode {
		p.errorf(n, "%s: want a mapping of strings", what)
		return m
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		m[n.Content[i].Value] = p.str(n.Content[i+1], what+"."+n.Content[i].Value)
	}
	return m
}

// value decodes any YAML value as a JSON-compatible value.
func (p *parser) value(n *yaml.Node, what string) any {
	var v any
	if err := n.Decode(&v); err != nil {
		p.errorf(n, "%s: %v", what, err)
		return nil
	}
	j, err := toJSON(v)
	if err != nil {
		p.errorf(n, "%s: %v", what, err)
	}
	return j
}

func (p *parser) contract(n *yaml.Node) *Contract {
	c := &Contract{File: p.file, Line: n.Line, Vars: map[string]string{}}
	p.fields(n, "contract", map[string]func(*yaml.Node){
		"name":        func(v *yaml.Node) { c.Name = p.str(v, "name") },
		"description": func(v *yaml.Node) { c.Description = p.str(v, "description") },
		"vars": func(v *yaml.Node) {
			c.Vars = p.strMap(v, "vars")
			for k := range c.Vars {
				if !varName.MatchString(k) {
					p.errorf(v, "vars: %q is not a variable name (letters, digits, _)", k)
				}
			}
		},
		"timeout": func(v *yaml.Node) { c.Timeout = p.duration(v, "timeout") },
		"steps": func(v *yaml.Node) {
			if v.Kind != yaml.SequenceNode {
				p.errorf(v, "steps: want a list of steps")
				return
			}
			for i, s := range v.Content {
				c.Steps = append(c.Steps, p.step(s, i+1))
			}
		},
	})
	if c.Name == "" {
		p.errorf(n, "contract: missing name")
	}
	if len(c.Steps) == 0 {
		p.errorf(n, "contract %q: no steps", c.Name)
	}
	return c
}

func (p *parser) duration(n *yaml.Node, what string) time.Duration {
	d, err := time.ParseDuration(p.str(n, what))
	if err != nil || d <= 0 {
		p.errorf(n, "%s: want a positive duration such as 5s, got %q", what, n.Value)
	}
	return d
}

func (p *parser) step(n *yaml.Node, index int) *Step {
	s := &Step{Line: n.Line, Capture: map[string]string{}}
	var requestJSON *yaml.Node
	p.fields(n, fmt.Sprintf("step %d", index), map[string]func(*yaml.Node){
		"name": func(v *yaml.Node) { s.Name = p.str(v, "name") },
		"request": func(v *yaml.Node) {
			s.Request, requestJSON = p.request(v)
		},
		"expect": func(v *yaml.Node) { s.Expect = p.expect(v) },
		"capture": func(v *yaml.Node) {
			s.Capture = p.strMap(v, "capture")
			for name, path := range s.Capture {
				if !varName.MatchString(name) {
					p.errorf(v, "capture: %q is not a variable name (letters, digits, _)", name)
				}
				if _, err := parsePath(path); err != nil {
					p.errorf(v, "capture %s: %v", name, err)
				}
			}
		},
	})
	if s.Name == "" {
		s.Name = fmt.Sprintf("step %d", index)
	}
	if s.Request.Path == "" {
		p.errorf(n, "step %q: missing request.path", s.Name)
	}
	for _, m := range s.Expect.Body {
		if m.EqualsRequest != "" && requestJSON == nil {
			p.errorf(&yaml.Node{Line: m.Line}, "%s: equals_request needs a request with a json body", m.Path)
		}
	}
	return s
}

func (p *parser) request(n *yaml.Node) (Request, *yaml.Node) {
	r := Request{Method: "GET", Headers: map[string]string{}}
	var jsonNode *yaml.Node
	p.fields(n, "request", map[string]func(*yaml.Node){
		"method": func(v *yaml.Node) {
			r.Method = strings.ToUpper(p.str(v, "method"))
			if !slices.Contains(methods, r.Method) {
				p.errorf(v, "method: %q is not one of %s", v.Value, strings.Join(methods, ", "))
			}
		},
		"path": func(v *yaml.Node) {
			r.Path = p.str(v, "path")
			if !strings.HasPrefix(r.Path, "/") {
				p.errorf(v, "path: %q must start with / (it is relative to the target URL)", r.Path)
			}
		},
		"headers": func(v *yaml.Node) { r.Headers = p.strMap(v, "headers") },
		"json":    func(v *yaml.Node) { r.JSON, r.HasJSON, jsonNode = p.value(v, "json"), true, v },
		"body":    func(v *yaml.Node) { r.Body = p.str(v, "body") },
	})
	if r.HasJSON && r.Body != "" {
		p.errorf(n, "request: give json or body, not both")
	}
	return r, jsonNode
}

func (p *parser) expect(n *yaml.Node) Expect {
	var e Expect
	p.fields(n, "expect", map[string]func(*yaml.Node){
		"status": func(v *yaml.Node) {
			var codes []int
			if v.Kind == yaml.SequenceNode {
				if err := v.Decode(&codes); err != nil {
					p.errorf(v, "status: want a code or a list of codes")
				}
			} else {
				var code int
				if err := v.Decode(&code); err != nil {
					p.errorf(v, "status: want a code or a list of codes")
				}
				codes = []int{code}
			}
			for _, c := range codes {
				if c < 100 || c > 599 {
					p.errorf(v, "status: %d is not an HTTP status code", c)
				}
			}
			e.Status = codes
		},
		"headers": func(v *yaml.Node) { e.Headers = p.matchers(v, "headers") },
		"body":    func(v *yaml.Node) { e.Body = p.matchers(v, "body") },
		"schema": func(v *yaml.Node) {
			doc := p.value(v, "schema")
			p.schemas++
			e.Schema, e.SchemaSource = p.compileSchema(v, doc, ""), "inline schema"
		},
		"schema_file": func(v *yaml.Node) {
			file := p.str(v, "schema_file")
			e.Schema, e.SchemaSource = p.compileSchema(v, nil, file), file
		},
	})
	for _, m := range e.Body {
		if _, err := parsePath(m.Path); err != nil {
			p.errorf(&yaml.Node{Line: m.Line}, "body: %v", err)
		}
	}
	return e
}

// compileSchema compiles an inline schema document, or the schema file (relative to the
// contract's directory). Draft 2020-12 unless the schema says otherwise; formats such as
// date-time are asserted, not just annotations.
func (p *parser) compileSchema(n *yaml.Node, doc any, file string) *jsonschema.Schema {
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
			p.errorf(n, "schema: %v", err)
			return nil
		}
		loc = abs
		if err := c.AddResource(loc, doc); err != nil {
			p.errorf(n, "schema: %v", err)
			return nil
		}
	}
	s, err := c.Compile(loc)
	if err != nil {
		p.errorf(n, "schema: %v", err)
		return nil
	}
	return s
}

// matchers reads an ordered mapping of path (or header name) -> matcher. A scalar or list
// instead of a matcher mapping means equals.
func (p *parser) matchers(n *yaml.Node, what string) []FieldMatcher {
	if n.Kind != yaml.MappingNode {
		p.errorf(n, "%s: want a mapping of %s to matchers", what, map[string]string{"headers": "header names", "body": "JSON paths"}[what])
		return nil
	}
	var out []FieldMatcher
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		fm := FieldMatcher{Path: k.Value, Line: k.Line}
		if v.Kind != yaml.MappingNode {
			fm.Equals, fm.HasEquals = p.value(v, what+"."+k.Value), true
		} else {
			fm.Matcher = p.matcher(v, what+"."+k.Value)
		}
		out = append(out, fm)
	}
	return out
}

func (p *parser) matcher(n *yaml.Node, what string) Matcher {
	var m Matcher
	p.fields(n, what, map[string]func(*yaml.Node){
		"regex": func(v *yaml.Node) {
			re, err := regexp.Compile(p.str(v, what+".regex"))
			if err != nil {
				p.errorf(v, "%s.regex: %v", what, err)
				return
			}
			m.Regex = re
		},
		"enum": func(v *yaml.Node) {
			if v.Kind != yaml.SequenceNode || len(v.Content) == 0 {
				p.errorf(v, "%s.enum: want a non-empty list of values", what)
				return
			}
			for _, e := range v.Content {
				m.Enum = append(m.Enum, p.value(e, what+".enum"))
			}
		},
		"type": func(v *yaml.Node) {
			m.Type = p.str(v, what+".type")
			if !slices.Contains(jsonTypes, m.Type) {
				p.errorf(v, "%s.type: %q is not one of %s", what, m.Type, strings.Join(jsonTypes, ", "))
			}
		},
		"equals":         func(v *yaml.Node) { m.Equals, m.HasEquals = p.value(v, what+".equals"), true },
		"equals_request": func(v *yaml.Node) { m.EqualsRequest = p.str(v, what+".equals_request") },
		"present": func(v *yaml.Node) {
			var b bool
			if err := v.Decode(&b); err != nil {
				p.errorf(v, "%s.present: want true or false", what)
			}
			m.Present = &b
		},
	})
	if m.EqualsRequest != "" {
		if _, err := parsePath(m.EqualsRequest); err != nil {
			p.errorf(n, "%s.equals_request: %v", what, err)
		}
	}
	if m.Present != nil && !*m.Present && (m.Regex != nil || m.Enum != nil || m.Type != "" || m.HasEquals || m.EqualsRequest != "") {
		p.errorf(n, "%s: present: false cannot be combined with checks of the value", what)
	}
	return m
}
