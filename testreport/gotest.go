package testreport

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"
)

// Event is one line of `go test -json` (cmd/test2json).
type Event struct {
	Time    time.Time `json:"Time"`
	Action  string    `json:"Action"`
	Package string    `json:"Package"`
	Test    string    `json:"Test"`
	Elapsed float64   `json:"Elapsed"` // seconds, on pass, fail and skip
	Output  string    `json:"Output"`
}

// Status of a test or a package.
type Status string

const (
	StatusRunning Status = ""
	StatusPass    Status = "pass"
	StatusFail    Status = "fail"
	StatusSkip    Status = "skip"
)

// Test is one test (or subtest, "TestX/case") of a package.
type Test struct {
	Name    string
	Status  Status
	Elapsed time.Duration
	Output  string
}

// Package is what one package's events said. Elapsed is the test binary's run time, the
// duration a shard split balances (compiling is cached and not the package's own cost).
type Package struct {
	Name    string
	Status  Status
	Elapsed time.Duration
	Output  string // output not attributed to a test: build errors, a panic in TestMain
	Tests   []*Test
	byName  map[string]*Test
}

// Parser reads `go test -json` output as it is written. Lines that are not test2json
// events (other steps' output, a build error printed before the events) are ignored. It
// is not safe for concurrent writes; os/exec writes a step's stdout from one goroutine.
type Parser struct {
	partial  []byte
	pkgs     []*Package
	byName   map[string]*Package
	maxBytes int
	lines    int
	// other is the first non-blank line that was not an event, and its number (0: none),
	// for the error of a stream without events.
	other     string
	otherLine int
}

// MaxTestOutput bounds the output kept per test and per package, so a chatty suite does
// not grow the worker's memory or the JUnit artifact without limit; the logs have it all.
const MaxTestOutput = 64 << 10

// NewParser returns an empty parser.
func NewParser() *Parser {
	return &Parser{byName: map[string]*Package{}, maxBytes: MaxTestOutput}
}

// Write consumes complete lines of b and keeps an incomplete last line for the next call.
func (p *Parser) Write(b []byte) (int, error) {
	n := len(b)
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			p.partial = append(p.partial, b...)
			break
		}
		if len(p.partial) > 0 {
			p.partial = append(p.partial, b[:i]...)
			p.line(p.partial)
			p.partial = p.partial[:0]
		} else {
			p.line(b[:i])
		}
		b = b[i+1:]
	}
	return n, nil
}

// Packages returns the packages seen so far, in the order they first appeared, after
// consuming a last line without a newline.
func (p *Parser) Packages() []*Package {
	if len(p.partial) > 0 {
		p.line(p.partial)
		p.partial = nil
	}
	return p.pkgs
}

func (p *Parser) line(l []byte) {
	p.lines++
	l = bytes.TrimSpace(l)
	if len(l) == 0 {
		return
	}
	var e Event
	if l[0] != '{' || json.Unmarshal(l, &e) != nil || e.Action == "" || e.Package == "" {
		if p.otherLine == 0 {
			p.other, p.otherLine = string(l[:min(len(l), 80)]), p.lines
		}
		return
	}
	p.Event(e)
}

// Parse reads a whole `go test -json` stream and returns its packages. Lines that are not
// events are skipped, as by Parser; a stream without a single event (the output of `go
// test` without -json, say) is ErrNoEvents, naming its first line.
func Parse(r io.Reader) ([]*Package, error) {
	p := NewParser()
	if _, err := io.Copy(p, r); err != nil {
		return nil, fmt.Errorf("read go test -json output: %w", err)
	}
	pkgs := p.Packages()
	switch {
	case len(pkgs) > 0:
		return pkgs, nil
	case p.otherLine == 0:
		return nil, fmt.Errorf("%w: the input is empty", ErrNoEvents)
	}
	return nil, fmt.Errorf("%w: line %d is %q (run go test with -json)", ErrNoEvents, p.otherLine, p.other)
}

// Event applies one event.
func (p *Parser) Event(e Event) {
	pkg := p.byName[e.Package]
	if pkg == nil {
		pkg = &Package{Name: e.Package, byName: map[string]*Test{}}
		p.byName[e.Package] = pkg
		p.pkgs = append(p.pkgs, pkg)
	}
	elapsed := time.Duration(e.Elapsed * float64(time.Second))
	if e.Test == "" {
		switch e.Action {
		case "pass", "fail", "skip":
			pkg.Status, pkg.Elapsed = Status(e.Action), elapsed
		case "output", "build-output":
			pkg.Output = appendBounded(pkg.Output, e.Output, p.maxBytes)
		case "build-fail":
			pkg.Status = StatusFail
		}
		return
	}
	t := pkg.byName[e.Test]
	if t == nil {
		t = &Test{Name: e.Test}
		pkg.byName[e.Test] = t
		pkg.Tests = append(pkg.Tests, t)
	}
	switch e.Action {
	case "pass", "fail", "skip":
		t.Status, t.Elapsed = Status(e.Action), elapsed
	case "output":
		t.Output = appendBounded(t.Output, e.Output, p.maxBytes)
	}
}

func appendBounded(s, add string, limit int) string {
	if len(s) >= limit {
		return s
	}
	if len(s)+len(add) > limit {
		return s + add[:limit-len(s)]
	}
	return s + add
}

// failed reports whether t, reported failed or unfinished, failed its package: go test
// fails every parent of a failed subtest, so a failure under a parent that passed, or in a
// package that passed, was caught by the test that ran it. (A parent or package a cancel
// cut off is not a pass: its failures stand.)
func (p *Package) failed(t *Test) bool {
	if p.Status == StatusPass {
		return false
	}
	for name := t.Name; ; {
		i := strings.LastIndexByte(name, '/')
		if i < 0 {
			return true
		}
		name = name[:i]
		if parent := p.byName[name]; parent != nil && parent.Status == StatusPass {
			return false
		}
	}
}

// CutOff marks the tests a cancel interrupted as skipped: the run was stopped (another
// shard failed, or the run was cancelled), they did not fail.
func CutOff(pkgs []*Package) {
	for _, p := range pkgs {
		for _, t := range p.Tests {
			if t.Status == StatusRunning {
				t.Status = StatusSkip
				t.Output += "(not finished: the shard was cancelled)\n"
			}
		}
		if p.Status == StatusRunning {
			p.Status = StatusSkip
		}
	}
}

// noTestFiles is how go test says a package has nothing to run.
const noTestFiles = "[no test files]"

// Timings are the test binaries' run times of the packages that finished (passed or
// failed), the durations Split balances, and zero for a package without test files, which
// costs a shard nothing; any other skipped or cut-off package measured nothing.
func Timings(pkgs []*Package) map[string]time.Duration {
	out := make(map[string]time.Duration, len(pkgs))
	for _, p := range pkgs {
		switch {
		case p.Status == StatusPass || p.Status == StatusFail:
			out[p.Name] = p.Elapsed
		case p.Status == StatusSkip && len(p.Tests) == 0 && strings.Contains(p.Output, noTestFiles):
			out[p.Name] = 0
		}
	}
	return out
}
