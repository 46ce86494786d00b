package testreport

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/sluice-ci/sluice/internal/junit"
)

func TestSummary(t *testing.T) {
	failed := func(name string) junit.Case { return junit.Case{Name: name, Failure: &junit.Problem{}} }
	many := junit.Suite{Name: "m"}
	for i := range 12 {
		many.Cases = append(many.Cases, failed("T"+string(rune('a'+i))))
	}
	for _, tc := range []struct {
		name     string
		suites   []junit.Suite
		packages int
		want     string
	}{
		{"nothing", nil, 0, "0 tests, 0 failed"},
		{"one package passed", []junit.Suite{{Name: "p", Cases: []junit.Case{{Name: "TestA"}}}}, 1, "1 package, 1 test, 0 failed"},
		{"packages and JUnit suites, a failed subtest named", []junit.Suite{
			{Name: "p", Cases: []junit.Case{failed("TestT"), failed("TestT/x"), {Name: "TestT/y"}}},
			{Name: "q", Cases: []junit.Case{{Name: "TestB"}}},
			{Name: "reports/py.xml", Cases: []junit.Case{{Name: "test_a", Error: &junit.Problem{}}}},
		}, 2, "2 packages, 1 JUnit suite, 5 tests, 2 failed: p.TestT/x, reports/py.xml.test_a"},
		{"at most ten failures named", []junit.Suite{many}, 0,
			"1 JUnit suite, 12 tests, 12 failed: m.Ta, m.Tb, m.Tc, m.Td, m.Te, m.Tf, m.Tg, m.Th, m.Ti, m.Tj and 2 more"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Summary(tc.suites, tc.packages); got != tc.want {
				t.Fatalf("Summary = %q\nwant      %q", got, tc.want)
			}
		})
	}
}

func TestReadJUnit(t *testing.T) {
	dir := t.TempDir()
	for name, body := range map[string]string{
		"reports/a.xml": `<testsuites><testsuite name="api"><testcase name="ok" time="0.5"/>` +
			`<testcase name="bad"><failure message="want 200, got 500"/></testcase></testsuite></testsuites>`,
		"reports/b.xml":   `<testsuite><testcase name="alone"><skipped/></testcase></testsuite>`,
		"reports/bad.xml": `<html>not a report</html>`,
	} {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name   string
		globs  []string
		suites map[string][]string // suite: its cases
		cases  int
		errs   []string // in the error
		is     error    // the error wraps it
	}{
		{"suites named by their name, else their file", []string{"reports/[ab].xml"},
			map[string][]string{"api": {"ok", "bad"}, "reports/b.xml": {"alone"}}, 3, nil, nil},
		{"a file that does not parse is named, the others read", []string{"reports/*.xml"},
			map[string][]string{"api": {"ok", "bad"}, "reports/b.xml": {"alone"}}, 3, []string{"bad.xml", "root element <html>"}, nil},
		{"a glob outside the tree", []string{"../*.xml", "/etc/*.xml"}, map[string][]string{}, 0,
			[]string{`"../*.xml": outside the tree`, `"/etc/*.xml": outside the tree`}, ErrOutsideDir},
		{"no match is no suites", []string{"nope/*.xml"}, map[string][]string{}, 0, nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			suites, cases, err := ReadJUnit(dir, tc.globs)
			got := map[string][]string{}
			for _, s := range suites {
				for _, c := range s.Cases {
					got[s.Name] = append(got[s.Name], c.Name)
				}
			}
			if !reflect.DeepEqual(got, tc.suites) || len(cases) != tc.cases {
				t.Errorf("suites %v and %d cases, want %v and %d", got, len(cases), tc.suites, tc.cases)
			}
			if len(tc.errs) == 0 && err != nil {
				t.Fatalf("ReadJUnit: %v", err)
			}
			for _, want := range tc.errs {
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Errorf("error %v, want it to say %q", err, want)
				}
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error %v, want it to wrap %v", err, tc.is)
			}
		})
	}
}

func TestFailureTail(t *testing.T) {
	for _, tc := range []struct {
		name            string
		c               junit.Case
		lines, maxBytes int
		want            string
	}{
		{"last lines of a failure", junit.Case{Failure: &junit.Problem{Text: "a\nb\nc\nd\n"}}, 2, 100, "c\nd"},
		{"an error's text", junit.Case{Error: &junit.Problem{Text: "boom\n"}}, 5, 100, "boom"},
		{"at most maxBytes", junit.Case{Failure: &junit.Problem{Text: "0123456789"}}, 5, 4, "6789"},
		{"a passed case has none", junit.Case{}, 5, 100, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := (Failure{Case: tc.c}).Tail(tc.lines, tc.maxBytes); got != tc.want {
				t.Fatalf("Tail = %q, want %q", got, tc.want)
			}
		})
	}
}
