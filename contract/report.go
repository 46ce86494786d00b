package contract

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/sluice-ci/sluice/internal/junit"
)

// bodyLines bounds the response body a failed step shows.
const bodyLines = 30

// WriteText writes the human-readable report: one line per contract and per step, and
// under each failed step what was expected beside what came back, then the response body.
func (r *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "contracts against %s\n", r.Target)
	for _, c := range r.Contracts {
		verdict := "PASS"
		if !c.Passed() {
			verdict = "FAIL"
		}
		fmt.Fprintf(&b, "%s %s (%s:%d)\n", verdict, c.Contract.Name, c.Contract.File, c.Contract.Line)
		for i, s := range c.Steps {
			writeStep(&b, c.Contract, i+1, s)
		}
	}
	passed, failed, sp, sf, ss := r.Counts()
	fmt.Fprintf(&b, "contracts: %d passed, %d failed; steps: %d passed, %d failed, %d skipped\n", passed, failed, sp, sf, ss)
	_, err := io.WriteString(w, b.String())
	return err
}

func writeStep(b *strings.Builder, c *Contract, n int, s *StepResult) {
	head := fmt.Sprintf("%d %s: %s %s", n, s.Step.Name, s.Method, s.Path)
	switch s.Status {
	case StepSkipped:
		fmt.Fprintf(b, "  skip %s (an earlier step failed)\n", head)
		return
	case StepPassed:
		fmt.Fprintf(b, "  ok   %s -> %s\n", head, statusLine(s.StatusCode))
		return
	}
	if s.StatusCode != 0 {
		head += " -> " + statusLine(s.StatusCode)
	}
	fmt.Fprintf(b, "  FAIL %s (%s:%d)\n", head, c.File, s.Step.Line)
	if s.Err != nil {
		fmt.Fprintf(b, "       %s: %v\n", s.Kind, s.Err)
		return
	}
	for _, m := range s.Mismatches {
		fmt.Fprintf(b, "       %s\n         want: %s\n         got:  %s\n", m.Field, m.Want, m.Got)
	}
	if len(s.Body) > 0 {
		fmt.Fprintf(b, "       response body (%s):\n", orNone(s.BodyType))
		for _, line := range bodyPreview(s.Body) {
			fmt.Fprintf(b, "         %s\n", line)
		}
	}
}

func statusLine(code int) string { return fmt.Sprintf("%d %s", code, http.StatusText(code)) }

func orNone(s string) string {
	if s == "" {
		return "no Content-Type"
	}
	return s
}

// bodyPreview is the body indented when it is JSON, cut to bodyLines lines.
func bodyPreview(body []byte) []string {
	var pretty bytes.Buffer
	text := string(body)
	if json.Indent(&pretty, body, "", "  ") == nil {
		text = pretty.String()
	}
	lines := strings.Split(strings.TrimRight(text, "\n"), "\n")
	if len(lines) > bodyLines {
		lines = append(lines[:bodyLines], fmt.Sprintf("… (%d more lines)", len(lines)-bodyLines))
	}
	for i, l := range lines {
		lines[i] = shorten(l, 200)
	}
	return lines
}

// WriteJUnit writes the report as JUnit XML: a test suite per contract, a test case per
// step; a failure's text is the same diff the text report shows.
func (r *Report) WriteJUnit(w io.Writer) error {
	out := &junit.Suites{Name: "contracts against " + r.Target}
	for _, c := range r.Contracts {
		suite := junit.Suite{Name: c.Contract.Name, File: c.Contract.File}
		for i, s := range c.Steps {
			tc := junit.Case{
				Name: fmt.Sprintf("%d %s", i+1, s.Step.Name), ClassName: c.Contract.Name,
				File: c.Contract.File, Line: s.Step.Line, Time: junit.Seconds(s.Elapsed),
			}
			switch s.Status {
			case StepSkipped:
				tc.Skipped = &junit.Problem{Message: "an earlier step failed"}
			case StepFailed:
				var text strings.Builder
				writeStep(&text, c.Contract, i+1, s)
				tc.Failure = &junit.Problem{Message: s.FailureMessage(), Type: s.Kind, Text: text.String()}
			}
			suite.Cases = append(suite.Cases, tc)
		}
		out.Suites = append(out.Suites, suite)
	}
	return junit.Write(w, out)
}

// FailureMessage is a step's failure in one line: its first mismatch or its cause.
func (s *StepResult) FailureMessage() string {
	if s.Err != nil {
		return s.Err.Error()
	}
	if len(s.Mismatches) == 0 {
		return "failed"
	}
	m := s.Mismatches[0]
	msg := fmt.Sprintf("%s: want %s, got %s", m.Field, m.Want, m.Got)
	if n := len(s.Mismatches) - 1; n > 0 {
		msg += fmt.Sprintf(" (and %d more)", n)
	}
	return msg
}

// Summary is the report in one line, for a stage's message: the failed contracts with the
// first mismatch of each.
func (r *Report) Summary() string {
	passed, failed, _, _, _ := r.Counts()
	if failed == 0 {
		return fmt.Sprintf("%d contracts passed", passed)
	}
	var parts []string
	for _, c := range r.Contracts {
		for _, s := range c.Steps {
			if s.Status == StepFailed {
				parts = append(parts, fmt.Sprintf("%s, step %q: %s", c.Contract.Name, s.Step.Name, s.FailureMessage()))
			}
		}
	}
	return fmt.Sprintf("%d of %d contracts failed: %s", failed, passed+failed, strings.Join(parts, "; "))
}
