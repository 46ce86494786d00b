package testreport

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/sluice-ci/sluice/internal/junit"
)

// PackageCase is the name of the case standing for a package that failed without a
// failing test: it did not build, or TestMain or init panicked.
const PackageCase = "(package)"

// JUnitSuites converts packages to JUnit, one suite per package and one case per test; a
// failed test's failure text is its output. A package that failed with no failed test gets
// a PackageCase case carrying the package's output. Tests still running when the output
// ended (the binary crashed or timed out) count as failed. A test reported failed inside a
// passing parent or package (a suite's own tests run failing tests on purpose, through
// testing.RunTests) did not fail the run: it is a passed case with its output.
func JUnitSuites(pkgs []*Package) []junit.Suite {
	var suites []junit.Suite
	for _, pkg := range pkgs {
		s := junit.Suite{Name: pkg.Name}
		failedTest := false
		for _, t := range pkg.Tests {
			c := junit.Case{Name: t.Name, ClassName: pkg.Name, Time: junit.Seconds(t.Elapsed)}
			switch {
			case (t.Status == StatusFail || t.Status == StatusRunning) && pkg.failed(t):
				failedTest = true
				c.Failure = &junit.Problem{Message: t.Name + " failed", Type: "failure", Text: t.Output}
			case t.Status == StatusFail:
				c.SystemOut = &junit.Output{Text: t.Output}
			case t.Status == StatusSkip:
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

// Failure is a failed (or errored) case and the suite it is in.
type Failure struct {
	Suite string
	junit.Case
}

// Tail is the end of the failure's text (a Go test's output), at most lines lines and
// maxBytes bytes.
func (f Failure) Tail(lines, maxBytes int) string {
	p := f.Failure
	if p == nil {
		p = f.Error
	}
	if p == nil {
		return ""
	}
	s := strings.TrimRight(p.Text, "\n")
	if len(s) > maxBytes {
		s = s[len(s)-maxBytes:]
	}
	ls := strings.Split(s, "\n")
	if len(ls) > lines {
		ls = ls[len(ls)-lines:]
	}
	return strings.Join(ls, "\n")
}

// Failures returns the failed cases of suites, leaving out a test whose subtest failed too:
// "TestX/b failed" says more than "TestX failed".
func Failures(suites []junit.Suite) []Failure {
	var out []Failure
	for _, s := range suites {
		var failed []string
		for _, c := range s.Cases {
			if c.Failure != nil || c.Error != nil {
				failed = append(failed, c.Name)
			}
		}
		for _, c := range s.Cases {
			if c.Failure == nil && c.Error == nil {
				continue
			}
			if slices.ContainsFunc(failed, func(o string) bool { return strings.HasPrefix(o, c.Name+"/") }) {
				continue
			}
			out = append(out, Failure{Suite: s.Name, Case: c})
		}
	}
	return out
}

// Summary says in one line what suites hold, the first packages of them Go packages: "2
// packages, 1 JUnit suite, 7 tests, 1 failed: example.com/p.TestX", naming at most ten
// failures.
func Summary(suites []junit.Suite, packages int) string {
	tests := 0
	for _, s := range suites {
		tests += len(s.Cases)
	}
	var failed []string
	for _, f := range Failures(suites) {
		failed = append(failed, f.Suite+"."+f.Name)
	}
	var sum strings.Builder
	if packages > 0 {
		fmt.Fprintf(&sum, "%d %s, ", packages, plural(packages, "package"))
	}
	if n := len(suites) - packages; n > 0 {
		fmt.Fprintf(&sum, "%d JUnit %s, ", n, plural(n, "suite"))
	}
	fmt.Fprintf(&sum, "%d %s, %d failed", tests, plural(tests, "test"), len(failed))
	if len(failed) > 0 {
		const shown = 10
		sum.WriteString(": " + strings.Join(failed[:min(len(failed), shown)], ", "))
		if len(failed) > shown {
			fmt.Fprintf(&sum, " and %d more", len(failed)-shown)
		}
	}
	return sum.String()
}

// ReadJUnit reads the JUnit reports the globs (slash-separated, relative to dir) match: as
// suites, named by their own suite name or else by their file, and as the cases they hold.
// A glob that leaves dir, or a file that does not parse, is an error; the other files are
// read all the same.
func ReadJUnit(dir string, globs []string) ([]junit.Suite, []junit.ReadCase, error) {
	var suites []junit.Suite
	var cases []junit.ReadCase
	var errs []error
	for _, g := range globs {
		clean := filepath.Clean(filepath.FromSlash(g))
		if filepath.IsAbs(clean) || clean == ".." || strings.HasPrefix(clean, ".."+string(filepath.Separator)) {
			errs = append(errs, fmt.Errorf("JUnit glob %q: %w", g, ErrOutsideDir))
			continue
		}
		files, err := filepath.Glob(filepath.Join(dir, clean))
		if err != nil {
			errs = append(errs, fmt.Errorf("JUnit glob %q: %w", g, err))
			continue
		}
		for _, f := range files {
			rep, err := readJUnitFile(f)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			cases = append(cases, rep.Cases...)
			rel, err := filepath.Rel(dir, f)
			if err != nil {
				errs = append(errs, fmt.Errorf("JUnit report %s: %w", f, err))
				continue
			}
			suites = append(suites, suitesOf(filepath.ToSlash(rel), rep)...)
		}
	}
	return suites, cases, errors.Join(errs...)
}

func readJUnitFile(path string) (*junit.Report, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open JUnit report: %w", err)
	}
	defer f.Close()
	rep, err := junit.Read(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return rep, nil
}

// suitesOf groups a report's cases back into suites, named by their suite or else by file.
func suitesOf(file string, rep *junit.Report) []junit.Suite {
	var out []junit.Suite
	index := map[string]int{}
	for _, c := range rep.Cases {
		name := c.Suite
		if name == "" {
			name = file
		}
		i, ok := index[name]
		if !ok {
			i = len(out)
			index[name] = i
			out = append(out, junit.Suite{Name: name, File: file})
		}
		jc := junit.Case{Name: c.Name, ClassName: c.ClassName, File: c.File, Line: c.Line, Time: junit.Seconds(c.Duration)}
		switch c.Status {
		case junit.Failed:
			jc.Failure = &junit.Problem{Message: c.Message, Text: c.Message}
		case junit.Errored:
			jc.Error = &junit.Problem{Message: c.Message, Text: c.Message}
		case junit.Skipped:
			jc.Skipped = &junit.Problem{Message: c.Message}
		}
		out[i].Cases = append(out[i].Cases, jc)
	}
	return out
}

func plural(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}
