package governance

import (
	"fmt"
	"io"

	"github.com/sluice-ci/sluice/internal/junit"
)

// WriteJUnit writes r as JUnit XML, for CI systems that show test reports: one test suite per
// rule, one test case per finding. A finding at or above the threshold is a failure; one
// below it passes with a note; a suppressed one is skipped with its justification; a rule
// without findings has one passing case, so the report shows what was checked.
func WriteJUnit(w io.Writer, r *Report, threshold Severity) error {
	out := &junit.Suites{Name: "sluice governance"}
	byRule := make(map[string]int)
	suite := func(id string) *junit.Suite {
		i, ok := byRule[id]
		if !ok {
			i = len(out.Suites)
			byRule[id] = i
			out.Suites = append(out.Suites, junit.Suite{Name: id})
		}
		return &out.Suites[i]
	}
	for _, ri := range r.Rules {
		suite(ri.ID)
	}
	for _, f := range r.Findings {
		s := suite(f.Rule)
		loc := fmt.Sprintf("%s:%d:%d", f.File, f.Line, f.Column)
		c := junit.Case{Name: loc + " " + f.Detector, ClassName: "governance." + f.Rule, File: f.File, Line: f.Line}
		detail := fmt.Sprintf("%s: %s [%s, %s]\n%s", loc, f.Message, f.Severity, f.Detector, f.Excerpt)
		switch {
		case f.Suppression != nil:
			c.Skipped = &junit.Problem{Message: "suppressed: " + f.Suppression.Justification}
		case f.Severity >= threshold:
			c.Failure = &junit.Problem{Message: f.Message, Type: f.Severity.String(), Text: detail}
		default:
			c.SystemOut = &junit.Output{Text: fmt.Sprintf("%s (below the %s threshold)", detail, threshold)}
		}
		s.Cases = append(s.Cases, c)
	}
	for i := range out.Suites {
		if s := &out.Suites[i]; len(s.Cases) == 0 {
			s.Cases = append(s.Cases, junit.Case{Name: "no findings", ClassName: "governance." + s.Name})
		}
	}
	return junit.Write(w, out)
}
