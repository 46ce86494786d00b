// Package e2e runs browser journeys, YAML files of steps (goto, click, fill, expect_text,
// ...), on a real headless Chromium through chromedp. It knows nothing of NATS: the e2e
// worker kind (workers/e2e) and `sluice e2e run` both call it. README.md in this directory
// documents the journey format with examples.
package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Action names a kind of step; the names are the keys of the journey format.
type Action string

// The step actions.
const (
	ActGoto                  Action = "goto"
	ActClick                 Action = "click"
	ActFill                  Action = "fill"
	ActSelect                Action = "select"
	ActPress                 Action = "press"
	ActWaitFor               Action = "wait_for"
	ActExpectText            Action = "expect_text"
	ActExpectURL             Action = "expect_url"
	ActExpectStatus          Action = "expect_status"
	ActExpectNoConsoleErrors Action = "expect_no_console_errors"
	ActScreenshot            Action = "screenshot"
)

var actions = []Action{ActGoto, ActClick, ActFill, ActSelect, ActPress, ActWaitFor, ActExpectText,
	ActExpectURL, ActExpectStatus, ActExpectNoConsoleErrors, ActScreenshot}

// Journey is one parsed journey file.
type Journey struct {
	Name    string
	File    string        // as given to Parse, for messages
	BaseURL string        // relative goto URLs resolve against it; empty: the run's base URL
	Timeout time.Duration // default timeout of each step; 0: the engine's default
	Steps   []Step
}

// Step is one step of a journey. Which fields are set depends on Action.
type Step struct {
	Action   Action
	Line     int           // line of the step in the file
	Timeout  time.Duration // 0: the journey's default
	Selector string        // CSS selector of click, fill, select, press, wait_for, expect_text
	Text     string        // expect_text, wait_for text
	URL      string        // goto URL; URL pattern of expect_url and wait_for url
	Value    string        // fill text; select option value
	Label    string        // select option label
	Key      string        // press: a key name (Enter, Tab, ...) or a character
	Status   int           // expect_status; goto: the status the page must answer (0: any < 400)
	Name     string        // screenshot name
}

// String describes the step as a user wrote it, for messages: `click "#save"`.
func (s Step) String() string {
	var parts []string
	add := func(k, v string) {
		if v != "" {
			parts = append(parts, k+"="+strconv.Quote(v))
		}
	}
	add("url", s.URL)
	add("selector", s.Selector)
	add("text", s.Text)
	add("value", s.Value)
	add("label", s.Label)
	add("key", s.Key)
	add("name", s.Name)
	if s.Status != 0 {
		parts = append(parts, "status="+strconv.Itoa(s.Status))
	}
	if len(parts) == 0 {
		return string(s.Action)
	}
	return string(s.Action) + " " + strings.Join(parts, " ")
}

// Error is a problem in a journey file, with its position.
type Error struct {
	File string
	Line int
	Msg  string
}

func (e *Error) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return e.File + ": " + e.Msg
}

// Errors is every problem found in journey files. errors.As(err, &Errors{}) tells bad input
// from a failure to run.
type Errors []*Error

func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Lookup resolves a ${VAR} reference; ok false means the variable is not defined.
type Lookup func(name string) (value string, ok bool)

// MapLookup looks names up in m, then in fallback when it is not nil.
func MapLookup(m map[string]string, fallback Lookup) Lookup {
	return func(name string) (string, bool) {
		if v, ok := m[name]; ok {
			return v, true
		}
		if fallback != nil {
			return fallback(name)
		}
		return "", false
	}
}

// EnvLookup resolves names from an environment list of KEY=VALUE entries.
func EnvLookup(env []string) Lookup {
	m := make(map[string]string, len(env))
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok {
			m[k] = v
		}
	}
	return MapLookup(m, nil)
}

// ParseFile reads and parses a journey file.
func ParseFile(path string, lookup Lookup) (*Journey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, Errors{{File: path, Msg: fmt.Sprintf("read journey: %v", err)}}
	}
	return Parse(path, data, lookup)
}

// LoadFiles parses every file, sorted by path, and returns every error at once.
func LoadFiles(paths []string, lookup Lookup) ([]*Journey, error) {
	sorted := append([]string(nil), paths...)
	sort.Strings(sorted)
	var js []*Journey
	var errs Errors
	for _, p := range sorted {
		j, err := ParseFile(p, lookup)
		var pe Errors
		switch {
		case errors.As(err, &pe):
			errs = append(errs, pe...)
		case err != nil:
			errs = append(errs, &Error{File: p, Msg: err.Error()})
		default:
			js = append(js, j)
		}
	}
	if len(errs) > 0 {
		return js, errs
	}
	return js, nil
}

// Parse parses a journey. Decoding is strict: an unknown key, an unknown step, a step with
// two actions, a bad duration, an undefined ${VAR} or a selector that is not valid CSS is an
// error naming the file and line. Variables are substituted in every value (not in keys);
// "$$" is a literal "$".
func Parse(file string, data []byte, lookup Lookup) (*Journey, error) {
	p := &parser{file: file, lookup: lookup}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, Errors{{File: file, Msg: "empty journey file"}}
		}
		return nil, Errors{{File: file, Line: yamlErrLine(err), Msg: "invalid YAML: " + err.Error()}}
	}
	j := &Journey{File: file}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if root.Kind != yaml.MappingNode {
		return nil, Errors{{File: file, Line: root.Line, Msg: "a journey is a mapping with name, base_url, timeout and steps"}}
	}
	var stepsNode *yaml.Node
	p.each(root, "journey", func(key string, k, v *yaml.Node) {
		switch key {
		case "name":
			j.Name = p.str(v)
		case "base_url":
			j.BaseURL = p.str(v)
		case "timeout":
			j.Timeout = p.duration(v)
		case "steps":
			stepsNode = v
		default:
			p.errf(k, "unknown field %q in journey (want name, base_url, timeout, steps)", key)
		}
	})
	if j.Name == "" {
		j.Name = strings.TrimSuffix(filepath.Base(file), filepath.Ext(file))
	}
	switch {
	case stepsNode == nil:
		p.errf(root, "journey has no steps")
	case stepsNode.Kind != yaml.SequenceNode:
		p.errf(stepsNode, "steps must be a list")
	case len(stepsNode.Content) == 0:
		p.errf(stepsNode, "journey has no steps")
	default:
		for _, n := range stepsNode.Content {
			if s, ok := p.step(n); ok {
				j.Steps = append(j.Steps, s)
			}
		}
	}
	if len(p.errs) > 0 {
		return nil, p.errs
	}
	return j, nil
}

var yamlLine = regexp.MustCompile(`line (\d+)`)

func yamlErrLine(err error) int {
	if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
		n, _ := strconv.Atoi(m[1])
		return n
	}
	return 0
}

type parser struct {
	file   string
	lookup Lookup
	errs   Errors
}

func (p *parser) errf(n *yaml.Node, format string, args ...any) {
	p.errs = append(p.errs, &Error{File: p.file, Line: n.Line, Msg: fmt.Sprintf(format, args...)})
}

// each calls fn for each key of a mapping node, rejecting duplicates.
func (p *parser) each(n *yaml.Node, what string, fn func(key string, k, v *yaml.Node)) {
	if n.Kind != yaml.MappingNode {
		p.errf(n, "%s must be a mapping", what)
		return
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if seen[k.Value] {
			p.errf(k, "duplicate key %q in %s", k.Value, what)
			continue
		}
		seen[k.Value] = true
		fn(k.Value, k, v)
	}
}

// str is a scalar value with variables substituted.
func (p *parser) str(n *yaml.Node) string {
	if n.Kind != yaml.ScalarNode {
		p.errf(n, "want a single value, got a %s", kindName(n))
		return ""
	}
	out, err := expand(n.Value, p.lookup)
	if err != nil {
		p.errf(n, "%v", err)
	}
	return out
}

func (p *parser) duration(n *yaml.Node) time.Duration {
	s := p.str(n)
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		p.errf(n, "bad duration %q (want e.g. 500ms, 5s, 1m)", s)
		return 0
	}
	return d
}

func (p *parser) int(n *yaml.Node, min, max int) int {
	s := p.str(n)
	v, err := strconv.Atoi(s)
	if err != nil || v < min || v > max {
		p.errf(n, "bad number %q (want %d..%d)", s, min, max)
		return 0
	}
	return v
}

func (p *parser) selector(n *yaml.Node) string {
	s := p.str(n)
	if err := CheckSelector(s); err != nil {
		p.errf(n, "%v", err)
	}
	return s
}

func (p *parser) urlPattern(n *yaml.Node) string {
	s := p.str(n)
	if s == "" {
		p.errf(n, "empty URL")
	}
	return s
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "mapping"
	case yaml.SequenceNode:
		return "list"
	}
	return "value"
}

// step decodes one step: a mapping with exactly one action key and an optional timeout.
func (p *parser) step(n *yaml.Node) (Step, bool) {
	s := Step{Line: n.Line}
	if n.Kind != yaml.MappingNode {
		p.errf(n, "a step is a mapping such as {click: \"#save\"}, got a %s", kindName(n))
		return s, false
	}
	before := len(p.errs)
	var action, arg *yaml.Node
	p.each(n, "step", func(key string, k, v *yaml.Node) {
		if key == "timeout" {
			s.Timeout = p.duration(v)
			return
		}
		if !isAction(key) {
			p.errf(k, "unknown step %q (want one of %s)", key, actionList())
			return
		}
		if action != nil {
			p.errf(k, "step has two actions, %q and %q: write one step each", action.Value, key)
			return
		}
		action, arg = k, v
	})
	if action == nil {
		if len(p.errs) == before {
			p.errf(n, "step has no action (want one of %s)", actionList())
		}
		return s, false
	}
	s.Action = Action(action.Value)
	p.args(&s, arg)
	return s, len(p.errs) == before
}

func isAction(key string) bool {
	for _, a := range actions {
		if string(a) == key {
			return true
		}
	}
	return false
}

func actionList() string {
	names := make([]string, len(actions))
	for i, a := range actions {
		names[i] = string(a)
	}
	return strings.Join(names, ", ")
}

// fields decodes a step's mapping argument: each allowed key calls its setter; a key that
// is not allowed is an error listing the ones that are.
func (p *parser) fields(s *Step, n *yaml.Node, allowed map[string]func(v *yaml.Node)) {
	names := make([]string, 0, len(allowed))
	for k := range allowed {
		names = append(names, k)
	}
	sort.Strings(names)
	p.each(n, string(s.Action), func(key string, k, v *yaml.Node) {
		set, ok := allowed[key]
		if !ok {
			p.errf(k, "unknown field %q in %s (want %s)", key, s.Action, strings.Join(names, ", "))
			return
		}
		set(v)
	})
}

// args decodes the argument of s's action: a scalar shorthand where one makes sense, or a
// mapping of named fields.
func (p *parser) args(s *Step, n *yaml.Node) {
	scalar := n.Kind == yaml.ScalarNode
	sel := func(v *yaml.Node) { s.Selector = p.selector(v) }
	switch s.Action {
	case ActGoto:
		if scalar {
			s.URL = p.urlPattern(n)
			return
		}
		p.fields(s, n, map[string]func(*yaml.Node){
			"url":    func(v *yaml.Node) { s.URL = p.urlPattern(v) },
			"status": func(v *yaml.Node) { s.Status = p.int(v, 100, 599) },
		})
		if s.URL == "" {
			p.errf(n, "goto needs a url")
		}
	case ActClick:
		if scalar {
			s.Selector = p.selector(n)
			return
		}
		p.fields(s, n, map[string]func(*yaml.Node){"selector": sel})
		p.need(n, s, s.Selector != "", "selector")
	case ActFill:
		p.fields(s, n, map[string]func(*yaml.Node){
			"selector": sel,
			"value":    func(v *yaml.Node) { s.Value = p.str(v) },
		})
		p.need(n, s, s.Selector != "", "selector")
	case ActSelect:
		var hasValue bool
		p.fields(s, n, map[string]func(*yaml.Node){
			"selector": sel,
			"value":    func(v *yaml.Node) { s.Value, hasValue = p.str(v), true },
			"label":    func(v *yaml.Node) { s.Label = p.str(v) },
		})
		p.need(n, s, s.Selector != "", "selector")
		if hasValue == (s.Label != "") {
			p.errf(n, "select needs exactly one of value and label")
		}
	case ActPress:
		if scalar {
			s.Key = p.key(n)
			return
		}
		p.fields(s, n, map[string]func(*yaml.Node){
			"selector": sel,
			"key":      func(v *yaml.Node) { s.Key = p.key(v) },
		})
		p.need(n, s, s.Key != "", "key")
	case ActWaitFor:
		if scalar {
			s.Selector = p.selector(n)
			return
		}
		p.fields(s, n, map[string]func(*yaml.Node){
			"selector": sel,
			"text":     func(v *yaml.Node) { s.Text = p.str(v) },
			"url":      func(v *yaml.Node) { s.URL = p.urlPattern(v) },
		})
		set := 0
		for _, v := range []string{s.Selector, s.Text, s.URL} {
			if v != "" {
				set++
			}
		}
		if set != 1 {
			p.errf(n, "wait_for needs exactly one of selector, text and url")
		}
	case ActExpectText:
		if scalar {
			s.Text = p.str(n)
		} else {
			p.fields(s, n, map[string]func(*yaml.Node){
				"selector": sel,
				"text":     func(v *yaml.Node) { s.Text = p.str(v) },
			})
		}
		p.need(n, s, s.Text != "", "text")
	case ActExpectURL:
		s.URL = p.urlPattern(n)
	case ActExpectStatus:
		s.Status = p.int(n, 100, 599)
	case ActExpectNoConsoleErrors:
		if v := p.str(n); v != "true" {
			p.errf(n, "expect_no_console_errors takes true, got %q", v)
		}
	case ActScreenshot:
		s.Name = p.str(n)
		if !validName.MatchString(s.Name) {
			p.errf(n, "screenshot name %q: use letters, digits, '-', '_' and '.'", s.Name)
		}
	}
}

var validName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

func (p *parser) need(n *yaml.Node, s *Step, ok bool, field string) {
	if !ok {
		p.errf(n, "%s needs a %s", s.Action, field)
	}
}

func (p *parser) key(n *yaml.Node) string {
	k := p.str(n)
	if _, ok := keyName(k); !ok {
		p.errf(n, "unknown key %q (want a single character or one of %s)", k, keyNames())
	}
	return k
}

// expand substitutes ${VAR} references; "$$" is a literal "$". A "$" not followed by "{"
// or "$" stays as it is, so ordinary text with dollar signs needs no escaping.
func expand(s string, lookup Lookup) (string, error) {
	if !strings.Contains(s, "$") {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '$' || i+1 >= len(s) {
			b.WriteByte(c)
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i++
		case '{':
			end := strings.IndexByte(s[i:], '}')
			if end < 0 {
				return "", fmt.Errorf("unterminated ${ in %q", s)
			}
			name := s[i+2 : i+end]
			if !varName.MatchString(name) {
				return "", fmt.Errorf("bad variable name %q in %q", name, s)
			}
			var v string
			ok := false
			if lookup != nil {
				v, ok = lookup(name)
			}
			if !ok {
				return "", fmt.Errorf("undefined variable ${%s}", name)
			}
			b.WriteString(v)
			i += end
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), nil
}

var varName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
