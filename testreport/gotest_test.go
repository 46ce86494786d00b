package testreport

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/sluice-ci/sluice/internal/golden"
	"github.com/sluice-ci/sluice/internal/junit"
)

// ev renders one test2json line.
func ev(action, pkg, test string, elapsed float64, output string) string {
	b, _ := json.Marshal(Event{Action: action, Package: pkg, Test: test, Elapsed: elapsed, Output: output})
	return string(b) + "\n"
}

// summary is what a test of the parser compares: per package, its status, elapsed and
// each test's status.
type summary struct {
	Status  Status
	Elapsed time.Duration
	Tests   map[string]Status
}

func summarise(pkgs []*Package) map[string]summary {
	out := map[string]summary{}
	for _, p := range pkgs {
		s := summary{Status: p.Status, Elapsed: p.Elapsed, Tests: map[string]Status{}}
		for _, t := range p.Tests {
			s.Tests[t.Name] = t.Status
		}
		out[p.Name] = s
	}
	return out
}

func TestParser(t *testing.T) {
	for _, tc := range []struct {
		name  string
		input string
		want  map[string]summary
		// failures are the cases the JUnit conversion marks failed, "suite.case".
		failures []string
	}{
		{
			name: "pass, fail and skip",
			input: ev("start", "p", "", 0, "") + ev("run", "p", "TestA", 0, "") + ev("pass", "p", "TestA", 0.5, "") +
				ev("run", "p", "TestB", 0, "") + ev("output", "p", "TestB", 0, "b_test.go:9: boom\n") + ev("fail", "p", "TestB", 0.25, "") +
				ev("run", "p", "TestC", 0, "") + ev("skip", "p", "TestC", 0, "") + ev("fail", "p", "", 1.5, ""),
			want: map[string]summary{"p": {StatusFail, 1500 * time.Millisecond,
				map[string]Status{"TestA": StatusPass, "TestB": StatusFail, "TestC": StatusSkip}}},
			failures: []string{"p.TestB"},
		},
		{
			name: "a failed subtest is named, not its parent",
			input: ev("run", "q", "TestT", 0, "") + ev("run", "q", "TestT/x", 0, "") + ev("fail", "q", "TestT/x", 0, "") +
				ev("run", "q", "TestT/y", 0, "") + ev("pass", "q", "TestT/y", 0, "") + ev("fail", "q", "TestT", 0.1, "") + ev("fail", "q", "", 0.2, ""),
			want: map[string]summary{"q": {StatusFail, 200 * time.Millisecond,
				map[string]Status{"TestT": StatusFail, "TestT/x": StatusFail, "TestT/y": StatusPass}}},
			failures: []string{"q.TestT/x"},
		},
		{
			name:     "a package that does not build",
			input:    ev("build-output", "r", "", 0, "r.go:3:1: syntax error\n") + ev("build-fail", "r", "", 0, "") + ev("fail", "r", "", 0, ""),
			want:     map[string]summary{"r": {StatusFail, 0, map[string]Status{}}},
			failures: []string{"r." + PackageCase},
		},
		{
			name: "a test cut off by a crash counts as failed",
			input: ev("run", "s", "TestHang", 0, "") + ev("output", "s", "TestHang", 0, "panic: test timed out\n") +
				ev("fail", "s", "", 10, ""),
			want:     map[string]summary{"s": {StatusFail, 10 * time.Second, map[string]Status{"TestHang": StatusRunning}}},
			failures: []string{"s.TestHang"},
		},
		{
			// What go test -json prints for testify's suite tests, which run a suite that
			// fails on purpose through testing.RunTests and pass when it failed.
			name: "failures a passing parent caught are not failures",
			input: ev("run", "m", "TestSuite", 0, "") + ev("run", "m", "TestSuite/Inner", 0, "") + ev("run", "m", "TestSuite/Inner/Sub", 0, "") +
				ev("output", "m", "TestSuite/Inner/Sub", 0, "    m_test.go:13: expected failure\n") + ev("fail", "m", "TestSuite/Inner/Sub", 0, "") +
				ev("fail", "m", "TestSuite/Inner", 0, "") + ev("pass", "m", "TestSuite", 0, "") +
				ev("run", "m", "TestReal", 0, "") + ev("fail", "m", "TestReal", 0, "") + ev("fail", "m", "", 0.1, ""),
			want: map[string]summary{"m": {StatusFail, 100 * time.Millisecond,
				map[string]Status{"TestSuite": StatusPass, "TestSuite/Inner": StatusFail, "TestSuite/Inner/Sub": StatusFail, "TestReal": StatusFail}}},
			failures: []string{"m.TestReal"},
		},
		{
			name: "a package that passed failed no test",
			input: ev("run", "n", "TestSuite", 0, "") + ev("run", "n", "TestSuite/Inner", 0, "") + ev("fail", "n", "TestSuite/Inner", 0, "") +
				ev("pass", "n", "", 0.1, ""),
			want:     map[string]summary{"n": {StatusPass, 100 * time.Millisecond, map[string]Status{"TestSuite": StatusRunning, "TestSuite/Inner": StatusFail}}},
			failures: nil,
		},
		{
			name: "lines that are not events are ignored; no newline at the end",
			input: "go: downloading example.com/x v1.0.0\n{not json}\n" + `{"Action":"pass"}` + "\n" +
				ev("run", "t", "TestA", 0, "") + strings.TrimSuffix(ev("pass", "t", "TestA", 0.01, ""), "\n"),
			want: map[string]summary{"t": {StatusRunning, 0, map[string]Status{"TestA": StatusPass}}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Written a byte at a time, as a pipe may split it.
			p := NewParser()
			for i := range len(tc.input) {
				if _, err := p.Write([]byte{tc.input[i]}); err != nil {
					t.Fatal(err)
				}
			}
			if got := summarise(p.Packages()); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("parsed %+v\nwant   %+v", got, tc.want)
			}
			var failures []string
			for _, f := range Failures(JUnitSuites(p.Packages())) {
				failures = append(failures, f.Suite+"."+f.Name)
			}
			if !reflect.DeepEqual(failures, tc.failures) {
				t.Fatalf("failures %q, want %q", failures, tc.failures)
			}
		})
	}
}

// A real `go test -json` stream of workers/testkind's fixture suite (charlie with
// FAIL_ONE=1, foxtrot) converts to the golden JUnit report.
func TestJUnitGolden(t *testing.T) {
	in, err := os.ReadFile(filepath.Join("testdata", "gotest", "fail.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	p := NewParser()
	if _, err := p.Write(in); err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	if err := junit.Write(&got, &junit.Suites{Name: "golden", Suites: JUnitSuites(p.Packages())}); err != nil {
		t.Fatal(err)
	}
	golden.Check(t, filepath.Join("testdata", "gotest", "fail.junit.xml"), got.Bytes())
	rep, err := junit.Read(bytes.NewReader(got.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if rep.Tests != 5 || rep.Failures != 1 {
		t.Fatalf("golden report: %d tests, %d failures; want 5 and 1", rep.Tests, rep.Failures)
	}
}

// Tests a cancel cut off are skipped, not failed: the shard was stopped, nothing failed.
func TestCutOff(t *testing.T) {
	p := NewParser()
	_, _ = p.Write([]byte(ev("run", "p", "TestDone", 0, "") + ev("pass", "p", "TestDone", 0.1, "") + ev("run", "p", "TestSlow", 0, "")))
	pkgs := p.Packages()
	CutOff(pkgs)
	suites := JUnitSuites(pkgs)
	if len(suites) != 1 || len(Failures(suites)) != 0 || suites[0].Cases[1].Skipped == nil {
		t.Fatalf("suites after a cancel: %+v", suites)
	}
}

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name     string
		input    string
		packages []string
		err      string // in the error; "" for none
	}{
		{"events among other lines", "go: downloading x\n" + ev("run", "p", "TestA", 0, "") + ev("pass", "p", "TestA", 0, "") +
			ev("pass", "q", "", 0, ""), []string{"p", "q"}, ""},
		{"go test without -json", "\n=== RUN   TestA\n--- PASS: TestA (0.00s)\nok  \tp\t0.1s\n", nil, `line 2 is "=== RUN   TestA"`},
		{"JSON that is not an event", `{"Action":"pass"}` + "\n", nil, "line 1 is"},
		{"empty", "", nil, "the input is empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pkgs, err := Parse(strings.NewReader(tc.input))
			if tc.err != "" {
				if !errors.Is(err, ErrNoEvents) || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("Parse: %v, want ErrNoEvents saying %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, p := range pkgs {
				names = append(names, p.Name)
			}
			if !reflect.DeepEqual(names, tc.packages) {
				t.Fatalf("packages %q, want %q", names, tc.packages)
			}
		})
	}
}

// Finished packages have a timing, and a package without test files costs nothing; a
// skipped or cut-off one measured nothing.
func TestTimings(t *testing.T) {
	in := ev("pass", "p", "", 1.5, "") + ev("fail", "q", "", 0.25, "") + ev("skip", "r", "", 0, "") + ev("run", "s", "TestA", 0, "") +
		ev("output", "u", "", 0, "?   \tu\t[no test files]\n") + ev("skip", "u", "", 0, "")
	pkgs, err := Parse(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	CutOff(pkgs)
	want := map[string]time.Duration{"p": 1500 * time.Millisecond, "q": 250 * time.Millisecond, "u": 0}
	if got := Timings(pkgs); !reflect.DeepEqual(got, want) {
		t.Fatalf("Timings = %v, want %v", got, want)
	}
}
