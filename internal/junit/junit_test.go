package junit

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// Write fills the counts from the cases, and Read gets back what was written.
func TestWriteThenRead(t *testing.T) {
	doc := &Suites{Name: "gate", Suites: []Suite{{Name: "pkg", Cases: []Case{
		{Name: "TestOK", ClassName: "pkg", Time: Seconds(1500 * time.Millisecond)},
		{Name: "TestBad", ClassName: "pkg", File: "a_test.go", Line: 7, Time: 0.25, Failure: &Problem{Message: "want 2, got 3", Text: "a_test.go:7: want 2, got 3\nmore"}},
		{Name: "TestSkip", ClassName: "pkg", Skipped: &Problem{Text: "needs a GPU"}},
	}}}}
	var b bytes.Buffer
	if err := Write(&b, doc); err != nil {
		t.Fatal(err)
	}
	if doc.Tests != 3 || doc.Failures != 1 || doc.Skipped != 1 || doc.Time != 1.75 {
		t.Fatalf("counts %+v", doc)
	}
	if !strings.HasPrefix(b.String(), `<?xml`) || !strings.Contains(b.String(), "<![CDATA[a_test.go:7: want 2, got 3\nmore]]>") {
		t.Fatalf("document:\n%s", b.String())
	}
	rep, err := Read(&b)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Tests != 3 || rep.Failures != 1 || rep.Skipped != 1 {
		t.Fatalf("read %+v", rep)
	}
	bad := rep.Cases[1]
	if bad.Status != Failed || bad.Message != "want 2, got 3" || bad.File != "a_test.go" || bad.Line != 7 || bad.Duration != 250*time.Millisecond {
		t.Fatalf("failed case %+v", bad)
	}
	if rep.Cases[2].Message != "needs a GPU" {
		t.Fatalf("skip reason %q", rep.Cases[2].Message)
	}
}

// Reports from other tools: a bare <testsuite> root, nested suites, an unknown root.
func TestReadOtherShapes(t *testing.T) {
	rep, err := Read(strings.NewReader(`<testsuite name="outer"><testcase name="a" time="0.5"/><testsuite name="inner"><testcase name="b"><error message="boom"/></testcase></testsuite></testsuite>`))
	if err != nil {
		t.Fatal(err)
	}
	if rep.Tests != 2 || rep.Errors != 1 || rep.Cases[1].Suite != "inner" || rep.Cases[1].Status != Errored {
		t.Fatalf("read %+v", rep)
	}
	if _, err := Read(strings.NewReader(`<html/>`)); err == nil || !strings.Contains(err.Error(), "<html>") {
		t.Fatalf("unknown root: %v", err)
	}
	if _, err := Read(strings.NewReader(`<testsuites`)); err == nil {
		t.Fatal("truncated XML read without error")
	}
}

// A Playwright-style single suite, failure text without a message.
func TestReadSingleSuite(t *testing.T) {
	in := `<testsuite name="pw" tests="2"><testcase name="a" time="0.5"/><testcase name="b"><failure>expected 1
got 2</failure></testcase></testsuite>`
	rep, err := Read(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if rep.Tests != 2 || rep.Failures != 1 || rep.Cases[1].Message != "expected 1" || rep.Cases[0].Duration != 500*time.Millisecond {
		t.Errorf("report %+v", rep)
	}
}
