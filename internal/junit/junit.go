// Package junit reads and writes JUnit XML, the test report format CI systems and report
// viewers read. Every gate that reports tests (the static gate's findings, contracts,
// browser journeys, sharded test suites) writes it through this one model.
package junit

import (
	"encoding/xml"
	"fmt"
	"io"
	"strings"
	"time"
)

// Suites is a report: the <testsuites> root.
type Suites struct {
	XMLName  xml.Name `xml:"testsuites"`
	Name     string   `xml:"name,attr,omitempty"`
	Tests    int      `xml:"tests,attr"`
	Failures int      `xml:"failures,attr"`
	Errors   int      `xml:"errors,attr"`
	Skipped  int      `xml:"skipped,attr"`
	Time     float64  `xml:"time,attr"`
	Suites   []Suite  `xml:"testsuite"`
}

// Suite is one <testsuite>.
type Suite struct {
	Name     string  `xml:"name,attr"`
	File     string  `xml:"file,attr,omitempty"`
	Tests    int     `xml:"tests,attr"`
	Failures int     `xml:"failures,attr"`
	Errors   int     `xml:"errors,attr"`
	Skipped  int     `xml:"skipped,attr"`
	Time     float64 `xml:"time,attr"`
	Cases    []Case  `xml:"testcase"`
}

// Case is one <testcase>; at most one of Failure, Error and Skipped is set.
type Case struct {
	Name      string   `xml:"name,attr"`
	ClassName string   `xml:"classname,attr"`
	File      string   `xml:"file,attr,omitempty"`
	Line      int      `xml:"line,attr,omitempty"`
	Time      float64  `xml:"time,attr"`
	Failure   *Problem `xml:"failure"`
	Error     *Problem `xml:"error"`
	Skipped   *Problem `xml:"skipped"`
	SystemOut *Output  `xml:"system-out"`
}

// Problem is a failure, error or skip, with its details as CDATA so multi-line text stays
// readable in the file.
type Problem struct {
	Message string `xml:"message,attr,omitempty"`
	Type    string `xml:"type,attr,omitempty"`
	Text    string `xml:",cdata"`
}

// Output is a case's captured output.
type Output struct {
	Text string `xml:",cdata"`
}

// Seconds is d in JUnit's unit, to the millisecond.
func Seconds(d time.Duration) float64 {
	return float64(d.Round(time.Millisecond)) / float64(time.Second)
}

// Write sets every count and time from the cases, then writes the report as indented XML.
func Write(w io.Writer, doc *Suites) error {
	doc.Tests, doc.Failures, doc.Errors, doc.Skipped, doc.Time = 0, 0, 0, 0, 0
	for i := range doc.Suites {
		s := &doc.Suites[i]
		s.Tests, s.Failures, s.Errors, s.Skipped, s.Time = len(s.Cases), 0, 0, 0, 0
		for _, c := range s.Cases {
			switch {
			case c.Failure != nil:
				s.Failures++
			case c.Error != nil:
				s.Errors++
			case c.Skipped != nil:
				s.Skipped++
			}
			s.Time += c.Time
		}
		doc.Tests += s.Tests
		doc.Failures += s.Failures
		doc.Errors += s.Errors
		doc.Skipped += s.Skipped
		doc.Time += s.Time
	}
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

// Status of a case read from a report.
type Status string

const (
	Passed  Status = "passed"
	Failed  Status = "failed"
	Errored Status = "error"
	Skipped Status = "skipped"
)

// ReadCase is one test case read from a report.
type ReadCase struct {
	Suite, Name, ClassName, File string
	Line                         int
	Status                       Status
	// Message is the failure's message, or the first line of its text.
	Message  string
	Duration time.Duration
}

// Report is what Read found.
type Report struct {
	Cases                            []ReadCase
	Tests, Failures, Errors, Skipped int
}

// Read reads a JUnit XML report whose root is <testsuites> or <testsuite>, as written by
// go-junit-report, Playwright, Cypress, pytest, Maven Surefire and jest-junit. Nested
// suites are flattened.
func Read(r io.Reader) (*Report, error) {
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
	rep := &Report{}
	switch root.XMLName.Local {
	case "testsuites":
		for _, s := range root.Suites {
			s.collect(rep)
		}
	case "testsuite":
		// The root's own <testsuite> children decode into Suites, not into its Nested.
		root.Nested = append(root.Nested, root.Suites...)
		root.readSuite.collect(rep)
	default:
		return nil, fmt.Errorf("parse JUnit: root element <%s>, want <testsuites> or <testsuite>", root.XMLName.Local)
	}
	return rep, nil
}

type readSuite struct {
	Name   string      `xml:"name,attr"`
	Cases  []Case      `xml:"testcase"`
	Nested []readSuite `xml:"testsuite"`
}

func (s readSuite) collect(rep *Report) {
	for _, c := range s.Cases {
		rc := ReadCase{Suite: s.Name, Name: c.Name, ClassName: c.ClassName, File: c.File, Line: c.Line,
			Status: Passed, Duration: time.Duration(c.Time * float64(time.Second))}
		rep.Tests++
		switch {
		case c.Failure != nil:
			rc.Status, rc.Message = Failed, c.Failure.summary()
			rep.Failures++
		case c.Error != nil:
			rc.Status, rc.Message = Errored, c.Error.summary()
			rep.Errors++
		case c.Skipped != nil:
			rc.Status, rc.Message = Skipped, c.Skipped.summary()
			rep.Skipped++
		}
		rep.Cases = append(rep.Cases, rc)
	}
	for _, n := range s.Nested {
		n.collect(rep)
	}
}

func (p *Problem) summary() string {
	if p.Message != "" {
		return p.Message
	}
	text := strings.TrimSpace(p.Text)
	if i := strings.IndexByte(text, '\n'); i > 0 {
		text = text[:i]
	}
	return text
}
