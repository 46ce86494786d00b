package e2e

import (
	"encoding/xml"
	"fmt"
	"io"
	"strings"
	"time"
)

// JUnit XML, the format CI systems and test report viewers read. One <testcase> per journey;
// a failed journey's <failure> names the step, and its <system-out> lists every step and
// what the page logged.

type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Name     string       `xml:"name,attr,omitempty"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Errors   int          `xml:"errors,attr"`
	Skipped  int          `xml:"skipped,attr,omitempty"`
	Time     float64      `xml:"time,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	XMLName  xml.Name    `xml:"testsuite"`
	Name     string      `xml:"name,attr"`
	Tests    int         `xml:"tests,attr"`
	Failures int         `xml:"failures,attr"`
	Errors   int         `xml:"errors,attr"`
	Skipped  int         `xml:"skipped,attr,omitempty"`
	Time     float64     `xml:"time,attr"`
	Cases    []junitCase `xml:"testcase"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	ClassName string        `xml:"classname,attr"`
	File      string        `xml:"file,attr,omitempty"`
	Line      int           `xml:"line,attr,omitempty"`
	Time      float64       `xml:"time,attr"`
	Failure   *junitProblem `xml:"failure"`
	Error     *junitProblem `xml:"error"`
	Skipped   *junitProblem `xml:"skipped"`
	SystemOut *junitOut     `xml:"system-out"`
}

// junitOut is CDATA so that multi-line output stays readable in the file.
type junitOut struct {
	Text string `xml:",cdata"`
}

type junitProblem struct {
	Message string `xml:"message,attr,omitempty"`
	Type    string `xml:"type,attr,omitempty"`
	Text    string `xml:",cdata"`
}

// WriteJUnit writes results as one JUnit test suite named suite.
func WriteJUnit(w io.Writer, suite string, results []*Result) error {
	s := junitSuite{Name: suite}
	for _, r := range results {
		c := junitCase{Name: r.Journey, ClassName: suite, File: r.File, Line: r.Line, Time: secs(r.Duration)}
		var out strings.Builder
		for i, st := range r.Steps {
			fmt.Fprintf(&out, "%2d. %-7s %s (%s)", i+1, st.Status, st.Step, st.Duration.Round(time.Millisecond))
			if st.Error != "" {
				fmt.Fprintf(&out, ": %s", st.Error)
			}
			out.WriteByte('\n')
		}
		for _, e := range r.Console {
			fmt.Fprintf(&out, "console %s: %s\n", e.Level, e.Text)
		}
		for _, e := range r.Exceptions {
			fmt.Fprintf(&out, "uncaught exception: %s\n", e)
		}
		for _, f := range r.FailedRequests {
			fmt.Fprintf(&out, "failed request: %s\n", f)
		}
		for _, sc := range r.Screenshots {
			fmt.Fprintf(&out, "screenshot: %s\n", sc.Name)
		}
		if out.Len() > 0 {
			c.SystemOut = &junitOut{Text: out.String()}
		}
		switch r.Status {
		case StatusFailed:
			s.Failures++
			c.Failure = &junitProblem{Message: r.Message, Type: "step failed", Text: r.Message}
		case StatusError:
			s.Errors++
			c.Error = &junitProblem{Message: r.Message, Type: "error", Text: r.Message}
		}
		s.Tests++
		s.Time += c.Time
		s.Cases = append(s.Cases, c)
	}
	doc := junitSuites{Name: suite, Tests: s.Tests, Failures: s.Failures, Errors: s.Errors, Time: s.Time, Suites: []junitSuite{s}}
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return fmt.Errorf("write JUnit: %w", err)
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return fmt.Errorf("write JUnit: %w", err)
	}
	if _, err := io.WriteString(w, "\n"); err != nil {
		return fmt.Errorf("write JUnit: %w", err)
	}
	return nil
}

func secs(d time.Duration) float64 { return float64(d.Round(time.Millisecond)) / float64(time.Second) }

// JUnitCase is one test case read from a JUnit file.
type JUnitCase struct {
	Suite, Name, ClassName, File string
	Line                         int
	Status                       Status
	Message                      string
	Duration                     time.Duration
}

// JUnitReport is what ReadJUnit found.
type JUnitReport struct {
	Cases                            []JUnitCase
	Tests, Failures, Errors, Skipped int
}

// ReadJUnit reads a JUnit XML report whose root is <testsuites> or <testsuite>, as written
// by Playwright, Cypress, pytest, Maven Surefire, jest-junit and go-junit-report. Nested
// suites are flattened.
func ReadJUnit(r io.Reader) (*JUnitReport, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("read JUnit: %w", err)
	}
	var root struct {
		XMLName xml.Name
		readSuite
		Suites []readSuite `xml:"testsuite"`
	}
	if err := xml.Unmarshal(data, &root); err != nil {
		return nil, fmt.Errorf("parse JUnit: %w", err)
	}
	rep := &JUnitReport{}
	switch root.XMLName.Local {
	case "testsuites":
		for _, s := range root.Suites {
			s.collect(rep)
		}
	case "testsuite":
		root.readSuite.collect(rep)
	default:
		return nil, fmt.Errorf("parse JUnit: root element <%s>, want <testsuites> or <testsuite>", root.XMLName.Local)
	}
	return rep, nil
}

type readSuite struct {
	Name   string      `xml:"name,attr"`
	Cases  []readCase  `xml:"testcase"`
	Nested []readSuite `xml:"testsuite"`
}

type readCase struct {
	Name      string        `xml:"name,attr"`
	ClassName string        `xml:"classname,attr"`
	File      string        `xml:"file,attr"`
	Line      int           `xml:"line,attr"`
	Time      float64       `xml:"time,attr"`
	Failure   *junitProblem `xml:"failure"`
	Error     *junitProblem `xml:"error"`
	Skipped   *junitProblem `xml:"skipped"`
}

func (s readSuite) collect(rep *JUnitReport) {
	for _, c := range s.Cases {
		jc := JUnitCase{Suite: s.Name, Name: c.Name, ClassName: c.ClassName, File: c.File, Line: c.Line,
			Status: StatusPassed, Duration: time.Duration(c.Time * float64(time.Second))}
		rep.Tests++
		switch {
		case c.Failure != nil:
			jc.Status, jc.Message = StatusFailed, problemText(c.Failure)
			rep.Failures++
		case c.Error != nil:
			jc.Status, jc.Message = StatusError, problemText(c.Error)
			rep.Errors++
		case c.Skipped != nil:
			jc.Status, jc.Message = StatusSkipped, problemText(c.Skipped)
			rep.Skipped++
		}
		rep.Cases = append(rep.Cases, jc)
	}
	for _, n := range s.Nested {
		n.collect(rep)
	}
}

func problemText(p *junitProblem) string {
	if p.Message != "" {
		return p.Message
	}
	text := strings.TrimSpace(p.Text)
	if i := strings.IndexByte(text, '\n'); i > 0 {
		text = text[:i]
	}
	return text
}
