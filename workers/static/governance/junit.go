package governance

import (
	"encoding/xml"
	"fmt"
	"io"
)

// JUnit XML output, for CI systems that show test reports: one test suite per rule, one
// test case per finding. A finding at or above the threshold is a failure; one below it
// passes with a note; a suppressed one is skipped with its justification; a rule without
// findings has one passing case, so the report shows what was checked.

type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Name     string       `xml:"name,attr"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Skipped  int          `xml:"skipped,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name     string      `xml:"name,attr"`
	Tests    int         `xml:"tests,attr"`
	Failures int         `xml:"failures,attr"`
	Skipped  int         `xml:"skipped,attr"`
	Cases    []junitCase `xml:"testcase"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	Classname string        `xml:"classname,attr"`
	File      string        `xml:"file,attr,omitempty"`
	Line      int           `xml:"line,attr,omitempty"`
	Failure   *junitFailure `xml:"failure"`
	Skipped   *junitSkipped `xml:"skipped"`
	SystemOut string        `xml:"system-out,omitempty"`
}

type junitFailure struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr"`
	Text    string `xml:",chardata"`
}

type junitSkipped struct {
	Message string `xml:"message,attr"`
}

// WriteJUnit writes r as JUnit XML; findings at or above threshold are failures.
func WriteJUnit(w io.Writer, r *Report, threshold Severity) error {
	out := junitSuites{Name: "sluice governance"}
	byRule := make(map[string]int)
	suite := func(id string) *junitSuite {
		i, ok := byRule[id]
		if !ok {
			i = len(out.Suites)
			byRule[id] = i
			out.Suites = append(out.Suites, junitSuite{Name: id})
		}
		return &out.Suites[i]
	}
	for _, ri := range r.Rules {
		suite(ri.ID)
	}
	for _, f := range r.Findings {
		s := suite(f.Rule)
		loc := fmt.Sprintf("%s:%d:%d", f.File, f.Line, f.Column)
		c := junitCase{
			Name: loc + " " + f.Detector, Classname: "governance." + f.Rule, File: f.File, Line: f.Line,
		}
		detail := fmt.Sprintf("%s: %s [%s, %s]\n%s", loc, f.Message, f.Severity, f.Detector, f.Excerpt)
		switch {
		case f.Suppression != nil:
			c.Skipped = &junitSkipped{Message: "suppressed: " + f.Suppression.Justification}
			s.Skipped++
			out.Skipped++
		case f.Severity >= threshold:
			c.Failure = &junitFailure{Message: f.Message, Type: f.Severity.String(), Text: detail}
			s.Failures++
			out.Failures++
		default:
			c.SystemOut = fmt.Sprintf("%s (below the %s threshold)", detail, threshold)
		}
		s.Cases = append(s.Cases, c)
	}
	for i := range out.Suites {
		s := &out.Suites[i]
		if len(s.Cases) == 0 {
			s.Cases = append(s.Cases, junitCase{Name: "no findings", Classname: "governance." + s.Name})
		}
		s.Tests = len(s.Cases)
		out.Tests += s.Tests
	}
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return fmt.Errorf("write JUnit: %w", err)
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(out); err != nil {
		return fmt.Errorf("write JUnit: %w", err)
	}
	if _, err := io.WriteString(w, "\n"); err != nil {
		return fmt.Errorf("write JUnit: %w", err)
	}
	return nil
}
