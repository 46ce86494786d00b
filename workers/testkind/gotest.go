package testkind

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"time"

	"github.com/sluice-ci/sluice/internal/junit"
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
	l = bytes.TrimSpace(l)
	if len(l) == 0 || l[0] != '{' {
		return
	}
	var e Event
	if err := json.Unmarshal(l, &e); err != nil || e.Action == "" || e.Package == "" {
		return
	}
	p.Event(e)
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

// PackageCase is the name of the case standing for a package that failed without a
// failing test: it did not build, or TestMain or init panicked.
const PackageCase = "(package)"

// JUnitSuites converts packages to JUnit, one suite per package and one case per test; a
// failed test's failure text is its output. A package that failed with no failed test gets
// a PackageCase case carrying the package's output. Tests still running when the output
// ended (the binary crashed or timed out) count as failed.
func JUnitSuites(pkgs []*Package) []junit.Suite {
	var suites []junit.Suite
	for _, pkg := range pkgs {
		s := junit.Suite{Name: pkg.Name}
		failedTest := false
		for _, t := range pkg.Tests {
			c := junit.Case{Name: t.Name, ClassName: pkg.Name, Time: junit.Seconds(t.Elapsed)}
			switch t.Status {
			case StatusFail, StatusRunning:
				failedTest = true
				c.Failure = &junit.Problem{Message: t.Name + " failed", Type: "failure", Text: t.Output}
			case StatusSkip:
				c.Skipped = &junit.Problem{Text: t.Output}
			}
			s.Cases = append(s.Cases, c)
		}
		if pkg.Status == StatusFail && !failedTest {
			s.Cases = append(s.Cases, junit.Case{
				Name: PackageCase, ClassName: pkg.Name, Time: junit.Seconds(pkg.Elapsed),
				Failure: &junit.Problem{Message: "package " + pkg.Name + " failed", Type: "failure", Text: pkg.Output},
			})
		}
		suites = append(suites, s)
	}
	return suites
}

// leafFailures returns the failed cases of a suite, leaving out a test whose subtest
// failed too: "TestX/b failed" says more than "TestX failed".
func leafFailures(s junit.Suite) []junit.Case {
	var failed []string
	for _, c := range s.Cases {
		if c.Failure != nil || c.Error != nil {
			failed = append(failed, c.Name)
		}
	}
	var out []junit.Case
	for _, c := range s.Cases {
		if c.Failure == nil && c.Error == nil {
			continue
		}
		if slices.ContainsFunc(failed, func(o string) bool { return strings.HasPrefix(o, c.Name+"/") }) {
			continue
		}
		out = append(out, c)
	}
	return out
}
