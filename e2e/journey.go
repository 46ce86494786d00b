// Package e2e runs browser journeys, YAML files of steps (goto, click, fill, expect_text,
// ...), on a real headless Chromium through chromedp. It knows nothing of NATS: the e2e
// worker kind (workers/e2e) and `sluice e2e run` both call it. README.md in this directory
// documents the journey format with examples.
package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/sluice-ci/sluice/internal/strictyaml"
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

// Error is a problem in a journey file: "FILE:LINE:COL: FIELD: MSG", the error type of
// every Sluice file format. Every Error of a journey wraps ErrInvalid.
type Error = strictyaml.Error

// Errors is every problem found in journey files, sorted by position.
type Errors = strictyaml.Errors

// Problems returns the problems in err one by one (nil when err is not about journey files'
// content, e.g. a file that cannot be read).
func Problems(err error) []*Error { return strictyaml.List(err) }

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
		d := &strictyaml.Decoder{File: path, Kind: ErrInvalid}
		d.Failf("read journey: %v", err)
		return nil, d.Err()
	}
	return Parse(path, data, lookup)
}

// LoadFiles parses every file, sorted by path, and returns every problem at once.
func LoadFiles(paths []string, lookup Lookup) ([]*Journey, error) {
	sorted := append([]string(nil), paths...)
	sort.Strings(sorted)
	var js []*Journey
	var errs Errors
	for _, p := range sorted {
		j, err := ParseFile(p, lookup)
		if err != nil {
			errs = append(errs, Problems(err)...)
			continue
		}
		js = append(js, j)
	}
	return js, errs.Err()
}

// journeyFormat names the file format in messages about a whole file.
var journeyFormat = strictyaml.Format{Name: "journey", Needs: "name, base_url, timeout and steps"}

// Parse parses a journey. Decoding is strict: an unknown key, an unknown step, a step with
// two actions, a bad duration, an undefined ${VAR} or a selector that is not valid CSS is an
// error naming the file, line, column and field; every problem is reported. Variables are
// substituted in every value (not in keys); "$$" is a literal "$".
func Parse(file string, data []byte, lookup Lookup) (*Journey, error) {
	p := &parser{Decoder: &strictyaml.Decoder{File: file, Kind: ErrInvalid}}
	p.Expand = func(s string) (string, []string) {
		out, err := expand(s, lookup)
		if err != nil {
			return "", []string{err.Error()}
		}
		return out, nil
	}
	root := p.Root(data, journeyFormat)
	if root == nil {
		return nil, p.Err()
	}
	j := &Journey{File: file}
	var stepsKey, stepsNode *yaml.Node
	p.Fields(root, "", "journey", []strictyaml.Field{
		{Name: "name", Fn: func(path string, _, v *yaml.Node) { j.Name = p.Str(path, v) }},
		{Name: "base_url", Fn: func(path string, _, v *yaml.Node) { j.BaseURL = p.Str(path, v) }},
		{Name: "timeout", Fn: func(path string, _, v *yaml.Node) { j.Timeout, _ = p.Duration(path, v, false) }},
		{Name: "steps", Fn: func(_ string, k, v *yaml.Node) { stepsKey, stepsNode = k, v }},
	})
	if j.Name == "" {
		j.Name = strings.TrimSuffix(filepath.Base(file), filepath.Ext(file))
	}
	switch {
	case stepsNode == nil:
		p.Errorf(root, "steps", "missing: a journey needs steps, e.g. `steps: [{goto: /}]`")
	case strictyaml.Resolve(stepsNode).Kind == yaml.SequenceNode && len(strictyaml.Resolve(stepsNode).Content) == 0:
		p.Errorf(stepsKey, "steps", "no steps: add at least one, e.g. `- goto: /`")
	default:
		p.List("steps", stepsNode, func(path string, _ int, n *yaml.Node) {
			if s, ok := p.step(path, n); ok {
				j.Steps = append(j.Steps, s)
			}
		})
	}
	if err := p.Err(); err != nil {
		return nil, err
	}
	return j, nil
}

type parser struct {
	*strictyaml.Decoder
}

func (p *parser) duration(path string, n *yaml.Node) time.Duration {
	d, _ := p.Duration(path, n, false)
	return d
}

func (p *parser) int(path string, n *yaml.Node, min, max int) int {
	v, _ := p.Int(path, n, int64(min), int64(max))
	return int(v)
}

func (p *parser) selector(path string, n *yaml.Node) string {
	s := p.Str(path, n)
	if err := CheckSelector(s); err != nil {
		p.Errorf(strictyaml.Resolve(n), path, "%v", err)
	}
	return s
}

func (p *parser) urlPattern(path string, n *yaml.Node) string {
	s, ok := p.Scalar(path, n)
	if ok && s == "" {
		p.Errorf(strictyaml.Resolve(n), path, "empty URL")
	}
	return s
}

// step decodes one step: a mapping with exactly one action key and an optional timeout.
func (p *parser) step(path string, n *yaml.Node) (Step, bool) {
	s := Step{Line: n.Line}
	if n.Kind != yaml.MappingNode {
		p.Errorf(n, path, "a step is a mapping such as {click: \"#save\"}, got %s", strictyaml.Describe(n))
		return s, false
	}
	before := p.Problems()
	var action, arg *yaml.Node
	p.Pairs(n, path, func(key string, k, v *yaml.Node) {
		if key == "timeout" {
			s.Timeout = p.duration(strictyaml.Join(path, key), v)
			return
		}
		if !isAction(key) {
			p.Errorf(k, strictyaml.Join(path, key), "unknown step %q %s", key, strictyaml.Hint(key, actionNames(), "steps"))
			return
		}
		if action != nil {
			p.Errorf(k, strictyaml.Join(path, key), "step has two actions, %q and %q: write one step each", action.Value, key)
			return
		}
		action, arg = k, v
	})
	if action == nil {
		if p.Problems() == before {
			p.Errorf(n, path, "step has no action (steps: %s)", strings.Join(actionNames(), ", "))
		}
		return s, false
	}
	s.Action = Action(action.Value)
	p.args(strictyaml.Join(path, action.Value), &s, strictyaml.Resolve(arg))
	return s, p.Problems() == before
}

func isAction(key string) bool {
	for _, a := range actions {
		if string(a) == key {
			return true
		}
	}
	return false
}

func actionNames() []string {
	names := make([]string, len(actions))
	for i, a := range actions {
		names[i] = string(a)
	}
	return names
}

// fields decodes a step's mapping argument: each allowed key calls its setter.
func (p *parser) fields(path string, s *Step, n *yaml.Node, allowed []strictyaml.Field) {
	p.Fields(n, path, string(s.Action), allowed)
}

// args decodes the argument of s's action: a scalar shorthand where one makes sense, or a
// mapping of named fields.
func (p *parser) args(path string, s *Step, n *yaml.Node) {
	scalar := n.Kind == yaml.ScalarNode
	f := func(name string, set func(path string, v *yaml.Node)) strictyaml.Field {
		return strictyaml.Field{Name: name, Fn: func(path string, _, v *yaml.Node) { set(path, v) }}
	}
	sel := f("selector", func(path string, v *yaml.Node) { s.Selector = p.selector(path, v) })
	switch s.Action {
	case ActGoto:
		if scalar {
			s.URL = p.urlPattern(path, n)
			return
		}
		p.fields(path, s, n, []strictyaml.Field{
			f("url", func(path string, v *yaml.Node) { s.URL = p.urlPattern(path, v) }),
			f("status", func(path string, v *yaml.Node) { s.Status = p.int(path, v, 100, 599) }),
		})
		p.need(path, n, s, s.URL != "", "url")
	case ActClick:
		if scalar {
			s.Selector = p.selector(path, n)
			return
		}
		p.fields(path, s, n, []strictyaml.Field{sel})
		p.need(path, n, s, s.Selector != "", "selector")
	case ActFill:
		p.fields(path, s, n, []strictyaml.Field{sel, f("value", func(path string, v *yaml.Node) { s.Value = p.Str(path, v) })})
		p.need(path, n, s, s.Selector != "", "selector")
	case ActSelect:
		var hasValue bool
		p.fields(path, s, n, []strictyaml.Field{
			sel,
			f("value", func(path string, v *yaml.Node) { s.Value, hasValue = p.Str(path, v), true }),
			f("label", func(path string, v *yaml.Node) { s.Label = p.Str(path, v) }),
		})
		p.need(path, n, s, s.Selector != "", "selector")
		if hasValue == (s.Label != "") {
			p.Errorf(n, path, "select needs exactly one of value and label")
		}
	case ActPress:
		if scalar {
			s.Key = p.key(path, n)
			return
		}
		p.fields(path, s, n, []strictyaml.Field{sel, f("key", func(path string, v *yaml.Node) { s.Key = p.key(path, v) })})
		p.need(path, n, s, s.Key != "", "key")
	case ActWaitFor:
		if scalar {
			s.Selector = p.selector(path, n)
			return
		}
		p.fields(path, s, n, []strictyaml.Field{
			sel,
			f("text", func(path string, v *yaml.Node) { s.Text = p.Str(path, v) }),
			f("url", func(path string, v *yaml.Node) { s.URL = p.urlPattern(path, v) }),
		})
		set := 0
		for _, v := range []string{s.Selector, s.Text, s.URL} {
			if v != "" {
				set++
			}
		}
		if set != 1 {
			p.Errorf(n, path, "wait_for needs exactly one of selector, text and url")
		}
	case ActExpectText:
		if scalar {
			s.Text = p.Str(path, n)
		} else {
			p.fields(path, s, n, []strictyaml.Field{sel, f("text", func(path string, v *yaml.Node) { s.Text = p.Str(path, v) })})
		}
		p.need(path, n, s, s.Text != "", "text")
	case ActExpectURL:
		s.URL = p.urlPattern(path, n)
	case ActExpectStatus:
		s.Status = p.int(path, n, 100, 599)
	case ActExpectNoConsoleErrors:
		if v, ok := p.Scalar(path, n); ok && v != "true" {
			p.Errorf(n, path, "expect_no_console_errors takes true, got %q", v)
		}
	case ActScreenshot:
		s.Name = p.Str(path, n)
		if !validName.MatchString(s.Name) {
			p.Errorf(n, path, "screenshot name %q: use letters, digits, '-', '_' and '.'", s.Name)
		}
	}
}

var validName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

func (p *parser) need(path string, n *yaml.Node, s *Step, ok bool, field string) {
	if !ok {
		p.Errorf(n, path, "%s needs a %s", s.Action, field)
	}
}

func (p *parser) key(path string, n *yaml.Node) string {
	k := p.Str(path, n)
	if _, ok := keyName(k); !ok {
		p.Errorf(strictyaml.Resolve(n), path, "unknown key %q (want a single character or one of %s)", k, keyNames())
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
