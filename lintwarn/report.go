package lintwarn

import (
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"slices"

	"github.com/sluice-ci/sluice/internal/junit"
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

type sarifLog struct {
	Schema  string     `json:"$schema"`
	Version string     `json:"version"`
	Runs    []sarifRun `json:"runs"`
}

type sarifRun struct {
	Tool       sarifTool     `json:"tool"`
	ColumnKind string        `json:"columnKind"`
	Results    []sarifResult `json:"results"`
}

type sarifTool struct {
	Driver sarifDriver `json:"driver"`
}

type sarifDriver struct {
	Name  string      `json:"name"`
	Rules []sarifRule `json:"rules"`
}

type sarifRule struct {
	ID string `json:"id"`
}

type sarifText struct {
	Text string `json:"text"`
}

type sarifResult struct {
	RuleID    string          `json:"ruleId,omitempty"`
	RuleIndex *int            `json:"ruleIndex,omitempty"`
	Level     string          `json:"level"`
	Message   sarifText       `json:"message"`
	Locations []sarifLocation `json:"locations,omitempty"`
}

type sarifLocation struct {
	PhysicalLocation sarifPhysical `json:"physicalLocation"`
}

type sarifPhysical struct {
	ArtifactLocation sarifArtifact `json:"artifactLocation"`
	Region           *sarifRegion  `json:"region,omitempty"`
}

type sarifArtifact struct {
	URI       string `json:"uri"`
	URIBaseID string `json:"uriBaseId"`
}

type sarifRegion struct {
	StartLine   int `json:"startLine"`
	StartColumn int `json:"startColumn,omitempty"`
}

// WriteSARIF writes the warnings as a SARIF 2.1.0 log with one run per linter, so a viewer
// (GitHub code scanning) names the tool that reported each. A warning is at level "error"
// when the count is over max_warnings or the linter called it an error, "warning" otherwise.
func WriteSARIF(w io.Writer, r *Report) error {
	log := sarifLog{
		Schema:  "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json",
		Version: "2.1.0",
		Runs:    []sarifRun{},
	}
	for _, tool := range r.toolsInOrder() {
		run := sarifRun{Tool: sarifTool{Driver: sarifDriver{Name: tool, Rules: []sarifRule{}}}, ColumnKind: "utf16CodeUnits", Results: []sarifResult{}}
		index := map[string]int{}
		for _, wn := range r.Warnings {
			if r.Tool(wn.Format) != tool {
				continue
			}
			res := sarifResult{Level: "warning", Message: sarifText{Text: wn.Message}}
			if r.Failed() || wn.Severity == "error" {
				res.Level = "error"
			}
			if wn.Rule != "" {
				i, ok := index[wn.Rule]
				if !ok {
					i = len(run.Tool.Driver.Rules)
					index[wn.Rule] = i
					run.Tool.Driver.Rules = append(run.Tool.Driver.Rules, sarifRule{ID: wn.Rule})
				}
				res.RuleID, res.RuleIndex = wn.Rule, &i
			}
			if wn.File != "" {
				loc := sarifLocation{PhysicalLocation: sarifPhysical{
					ArtifactLocation: sarifArtifact{URI: (&url.URL{Path: wn.File}).EscapedPath(), URIBaseID: "SRCROOT"},
				}}
				if wn.Line > 0 {
					loc.PhysicalLocation.Region = &sarifRegion{StartLine: wn.Line, StartColumn: wn.Column}
				}
				res.Locations = []sarifLocation{loc}
			}
			run.Results = append(run.Results, res)
		}
		log.Runs = append(log.Runs, run)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(log); err != nil {
		return fmt.Errorf("write SARIF: %w", err)
	}
	return nil
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
