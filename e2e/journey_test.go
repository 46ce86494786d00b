package e2e

import (
	"bytes"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluice-ci/sluice/internal/golden"
	"github.com/sluice-ci/sluice/internal/junit"
)

func TestParse(t *testing.T) {
	j := loadJourney(t, "testdata/journeys/pass.yaml")
	if j.Name != "sign in and add an item" || j.Timeout != 5*time.Second || len(j.Steps) != 13 {
		t.Fatalf("journey %+v", j)
	}
	want := []Step{
		{Action: ActGoto, Line: 4, URL: "/login"},
		{Action: ActFill, Line: 5, Selector: "#user", Value: "alice"},
	}
	for i, w := range want {
		if j.Steps[i] != w {
			t.Errorf("step %d: %+v, want %+v", i+1, j.Steps[i], w)
		}
	}
	if s := j.Steps[8]; s.Action != ActSelect || s.Label != "Green" {
		t.Errorf("select step %+v", s)
	}
	unnamed, err := Parse("dir/checkout.yml", []byte("steps: [{goto: /}]"), nil)
	if err != nil || unnamed.Name != "checkout" {
		t.Errorf("a journey without a name is named after its file: %+v, %v", unnamed, err)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name, yaml, want string
	}{
		{"unknown step", "steps:\n  - goto: /\n  - clik: '#a'\n", `j.yaml:3:5: steps[1].clik: unknown step "clik" (did you mean "click"?)`},
		{"unknown field", "name: x\nretries: 2\nsteps: [{goto: /}]\n", `j.yaml:2:1: retries: unknown field "retries" in journey (known fields: name, base_url, timeout, steps)`},
		{"unknown step field", "steps:\n  - fill: {selector: '#a', text: x}\n", `j.yaml:2:28: steps[0].fill.text: unknown field "text" in fill (known fields: selector, value)`},
		{"bad selector", "steps:\n  - goto: /\n  - click: 'button[type=submit'\n", `j.yaml:3:12: steps[1].click: bad CSS selector "button[type=submit": unclosed '['`},
		{"bad selector in mapping", "steps:\n  - expect_text: {selector: 'h1 >', text: x}\n", `j.yaml:2:29: steps[0].expect_text.selector: bad CSS selector "h1 >": ends with a combinator`},
		{"two actions", "steps:\n  - {goto: /, click: a}\n", `j.yaml:2:15: steps[0].click: step has two actions, "goto" and "click"`},
		{"undefined var", "steps:\n  - goto: ${TARGET}/x\n", "j.yaml:2:11: steps[0].goto: undefined variable ${TARGET}"},
		{"bad timeout", "steps:\n  - goto: /\n    timeout: soon\n", `j.yaml:3:14: steps[0].timeout: invalid duration "soon"`},
		{"bad key", "steps:\n  - press: Enterr\n", `j.yaml:2:12: steps[0].press: unknown key "Enterr"`},
		{"wait_for two", "steps:\n  - wait_for: {text: a, url: /b}\n", "j.yaml:2:15: steps[0].wait_for: wait_for needs exactly one of selector, text and url"},
		{"no steps", "name: x\n", "j.yaml:1:1: steps: missing: a journey needs steps"},
		{"empty steps", "steps: []\n", "j.yaml:1:1: steps: no steps: add at least one"},
		{"status", "steps:\n  - expect_status: 700\n", `j.yaml:2:20: steps[0].expect_status: 700 is out of range: must be 100..599`},
		{"not yaml", "steps: [\n", "j.yaml:1: invalid YAML"},
		{"a list", "- goto: /\n", "j.yaml:1:1: a journey is a mapping with name, base_url, timeout and steps, got a list"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("j.yaml", []byte(tt.yaml), nil)
			if !errors.Is(err, ErrInvalid) || len(Problems(err)) != 1 {
				t.Fatalf("error %v (%T), want one problem wrapping ErrInvalid", err, err)
			}
			if !strings.HasPrefix(err.Error(), tt.want) {
				t.Errorf("error %q does not start with %q", err, tt.want)
			}
		})
	}
}

func TestExpand(t *testing.T) {
	look := MapLookup(map[string]string{"A": "x"}, EnvLookup([]string{"B=y"}))
	for in, want := range map[string]string{
		"${A}/${B}": "x/y", "$$A": "$A", "costs $5": "costs $5", "${A}$": "x$",
	} {
		if got, err := expand(in, look); err != nil || got != want {
			t.Errorf("expand(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

func TestCheckSelector(t *testing.T) {
	good := []string{"#save", "button[type=submit]", `a[href^="/pay"] > span`, "ul li:nth-child(2)",
		"input:not([disabled]), select", "div.card ~ p + p", "[data-test='x y' i]", "p::first-line", "*"}
	for _, s := range good {
		if err := CheckSelector(s); err != nil {
			t.Errorf("CheckSelector(%q): %v", s, err)
		}
	}
	bad := []string{"", "#", "a,,b", "> a", "a > > b", "div[", "div]", "a[=x]", `a[href="x]`, "a:", "a{}", "li:nth-child(2", "a;b"}
	for _, s := range bad {
		if err := CheckSelector(s); !errors.Is(err, ErrBadSelector) {
			t.Errorf("CheckSelector(%q) = %v, want ErrBadSelector", s, err)
		}
	}
}

func TestURLPattern(t *testing.T) {
	tests := []struct {
		pattern, url string
		match        bool
	}{
		{"/payments", "http://h/payments", true},
		{"/payments", "http://h/payments/1", false},
		{"/payments/*", "http://h/payments/42", true},
		{"/payments/*", "http://h/payments/42/edit", false},
		{"/payments/**", "http://h/payments/42/edit", true},
		{"/search?q=*", "http://h/search?q=milk", true},
		{"http://h/*", "http://h/x", true},
	}
	for _, tt := range tests {
		if got := matchURL(urlPattern(tt.pattern), tt.pattern, tt.url); got != tt.match {
			t.Errorf("match(%q, %q) = %v", tt.pattern, tt.url, got)
		}
	}
}

func TestJUnitGolden(t *testing.T) {
	results := []*Result{
		{Journey: "login", File: "journeys/login.yaml", Status: StatusPassed, Duration: 1200 * time.Millisecond,
			Steps: []StepResult{{Step: Step{Action: ActGoto, URL: "/login"}, Status: StatusPassed, Duration: 300 * time.Millisecond}}},
		{Journey: "save", File: "journeys/save.yaml", Status: StatusFailed, Failed: 2, Line: 5, Duration: 2 * time.Second,
			Message: `step 2 (journeys/save.yaml:5) expect_text text="Saved": not within 1s: text "Saved" not found`,
			Steps: []StepResult{
				{Step: Step{Action: ActClick, Selector: "#save"}, Status: StatusPassed, Duration: 100 * time.Millisecond},
				{Step: Step{Action: ActExpectText, Text: "Saved"}, Status: StatusFailed, Error: `not within 1s: text "Saved" not found`, Duration: time.Second},
			},
			Console:     []ConsoleEntry{{Level: "error", Text: "boom <&>"}},
			Screenshots: []Screenshot{{Name: "02-expect_text-failed.png", Step: 2}}},
		{Journey: "crash", File: "journeys/crash.yaml", Status: StatusError, Message: "browser crashed (pid 7)"},
	}
	var b bytes.Buffer
	if err := WriteJUnit(&b, "e2e", results); err != nil {
		t.Fatal(err)
	}
	golden.Check(t, filepath.Join("testdata", "junit.golden.xml"), b.Bytes())
	rep, err := junit.Read(bytes.NewReader(b.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if rep.Tests != 3 || rep.Failures != 1 || rep.Errors != 1 || rep.Cases[1].Line != 5 || rep.Cases[1].Status != junit.Failed {
		t.Errorf("read back %+v", rep)
	}
}

func TestParseReportsEveryProblemAtOnce(t *testing.T) {
	_, err := Parse("j.yaml", []byte("timeout: later\nsteps:\n  - clik: a\n  - goto: {url: /, status: 999}\n  - press: Entr\n"), nil)
	ps := Problems(err)
	var lines []int
	for _, p := range ps {
		lines = append(lines, p.Line)
	}
	if !slices.Equal(lines, []int{1, 3, 4, 5}) {
		t.Fatalf("problems on lines %v, want 1 3 4 5:\n%v", lines, err)
	}
}
