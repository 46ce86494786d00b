package e2e

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/sluice-ci/sluice/internal/junit"
)

// WriteJUnit writes results as one JUnit test suite named suite: one <testcase> per journey;
// a failed journey's <failure> names the step, and its <system-out> lists every step and
// what the page logged.
func WriteJUnit(w io.Writer, suite string, results []*Result) error {
	s := junit.Suite{Name: suite}
	for _, r := range results {
		c := junit.Case{Name: r.Journey, ClassName: suite, File: r.File, Line: r.Line, Time: junit.Seconds(r.Duration)}
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
			c.SystemOut = &junit.Output{Text: out.String()}
		}
		switch r.Status {
		case StatusFailed:
			c.Failure = &junit.Problem{Message: r.Message, Type: "step failed", Text: r.Message}
		case StatusError:
			c.Error = &junit.Problem{Message: r.Message, Type: "error", Text: r.Message}
		}
		s.Cases = append(s.Cases, c)
	}
	return junit.Write(w, &junit.Suites{Name: suite, Suites: []junit.Suite{s}})
}
