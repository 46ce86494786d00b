package lintwarn

import (
	"fmt"
	"io"
	"slices"

	"github.com/sluice-ci/sluice/internal/junit"
	"github.com/sluice-ci/sluice/internal/sarif"
)

// Report is the warnings of a stage judged against its max_warnings.
type Report struct {
	Warnings    []Warning // distinct warnings in the order printed, at most MaxKept
	Count       int       // distinct warnings, kept or not
	MaxWarnings int
	tools       map[string]string // format -> the program it reads
}

// Failed says the count is above max_warnings.
func (r *Report) Failed() bool { return r.Count > r.MaxWarnings }

// Tool names the program whose output a format reads: "go vet", "eslint", or the pattern.
func (r *Report) Tool(format string) string {
	if t, ok := r.tools[format]; ok {
		return t
	}
	return format
}

// Summary says how the count compares with the limit: "3 warnings over max_warnings 0".
func (r *Report) Summary() string {
	word := "warnings"
	if r.Count == 1 {
		word = "warning"
	}
	if r.Failed() {
		return fmt.Sprintf("%d %s over max_warnings %d", r.Count, word, r.MaxWarnings)
	}
	return fmt.Sprintf("%d %s, within max_warnings %d", r.Count, word, r.MaxWarnings)
}

// toolsInOrder lists the tools of the warnings in the order they first appear.
func (r *Report) toolsInOrder() []string {
	var tools []string
	for _, w := range r.Warnings {
		if t := r.Tool(w.Format); !slices.Contains(tools, t) {
			tools = append(tools, t)
		}
	}
	return tools
}

// WriteSARIF writes the warnings as a SARIF 2.1.0 log with one run per linter, so a viewer
// (GitHub code scanning) names the tool that reported each. A warning is at level "error"
// when the count is over max_warnings or the linter called it an error, "warning" otherwise.
func WriteSARIF(w io.Writer, r *Report) error {
	log := sarif.NewLog()
	for _, tool := range r.toolsInOrder() {
		run := sarif.Run{Tool: sarif.Tool{Driver: sarif.Driver{Name: tool, Rules: []sarif.Rule{}}}, ColumnKind: "utf16CodeUnits", Results: []sarif.Result{}}
		index := map[string]int{}
		for _, wn := range r.Warnings {
			if r.Tool(wn.Format) != tool {
				continue
			}
			res := sarif.Result{Level: "warning", Message: sarif.Text{Text: wn.Message}}
			if r.Failed() || wn.Severity == "error" {
				res.Level = "error"
			}
			if wn.Rule != "" {
				i, ok := index[wn.Rule]
				if !ok {
					i = len(run.Tool.Driver.Rules)
					index[wn.Rule] = i
					run.Tool.Driver.Rules = append(run.Tool.Driver.Rules, sarif.Rule{ID: wn.Rule})
				}
				res.RuleID, res.RuleIndex = wn.Rule, &i
			}
			if wn.File != "" {
				var region *sarif.Region
				if wn.Line > 0 {
					region = &sarif.Region{StartLine: wn.Line, StartColumn: wn.Column}
				}
				res.Locations = []sarif.Location{sarif.FileLocation(wn.File, region)}
			}
			run.Results = append(run.Results, res)
		}
		log.Runs = append(log.Runs, run)
	}
	return sarif.Write(w, log)
}

// WriteJUnit writes the warnings as JUnit XML: one suite per linter, one case per warning,
// each a failure when the count is over max_warnings and a pass with a note otherwise. With
// no warnings, one passing case says so.
func WriteJUnit(w io.Writer, r *Report) error {
	out := &junit.Suites{Name: "sluice warnings"}
	for _, tool := range r.toolsInOrder() {
		s := junit.Suite{Name: tool}
		for _, wn := range r.Warnings {
			if r.Tool(wn.Format) != tool {
				continue
			}
			where := Location(wn)
			c := junit.Case{Name: where + " " + wn.Rule, ClassName: "warnings." + tool, File: wn.File, Line: wn.Line}
			if wn.Rule == "" {
				c.Name = where
			}
			detail := where + ": " + wn.Message
			if r.Failed() {
				c.Failure = &junit.Problem{Message: wn.Message, Type: "warning", Text: detail + "\n" + r.Summary()}
			} else {
				c.SystemOut = &junit.Output{Text: detail + " (" + r.Summary() + ")"}
			}
			s.Cases = append(s.Cases, c)
		}
		out.Suites = append(out.Suites, s)
	}
	if len(out.Suites) == 0 {
		out.Suites = []junit.Suite{{Name: "warnings", Cases: []junit.Case{{Name: "no warnings", ClassName: "warnings"}}}}
	}
	if err := junit.Write(w, out); err != nil {
		return fmt.Errorf("write JUnit: %w", err)
	}
	return nil
}

// Location is where a warning is, as far as the linter said: "main.go:17:14", "main.go:3",
// "main.go" or "".
func Location(w Warning) string {
	switch {
	case w.Line > 0 && w.Column > 0:
		return fmt.Sprintf("%s:%d:%d", w.File, w.Line, w.Column)
	case w.Line > 0:
		return fmt.Sprintf("%s:%d", w.File, w.Line)
	}
	return w.File
}
