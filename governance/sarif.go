package governance

import (
	"io"

	"github.com/sluice-ci/sluice/internal/sarif"
)

// SARIF 2.1.0 output (OASIS Static Analysis Results Interchange Format), as GitHub code
// scanning and other viewers read it: rules with their metadata, one result per finding
// with its ruleIndex, a physical location relative to the scanned root (uriBaseId
// SRCROOT), a redacted snippet, and a partial fingerprint that is stable across scans.
// Suppressed findings stay in the log with a suppression (inSource or external), so a
// viewer shows them as such.

// SARIFFingerprintKey names the partial fingerprint of results.
const SARIFFingerprintKey = "sluiceFingerprint/v1"

// SARIFOptions describe the tool in the log.
type SARIFOptions struct {
	ToolVersion string // e.g. the sluice version; optional
}

// sarifRunProps say what the scan read and what it left out, by reason (SkipReason), so
// a viewer can tell a clean tree from an unscanned one.
type sarifRunProps struct {
	FilesScanned int            `json:"filesScanned"`
	LinesScanned int            `json:"linesScanned"`
	Skipped      map[string]int `json:"skipped"`
}

type sarifRuleProps struct {
	Tags             []string `json:"tags"`
	Precision        string   `json:"precision"`
	SecuritySeverity string   `json:"security-severity,omitempty"`
}

// sarifResultProps: context (code, test, fixture, docs) is also a tag, "context:test", for
// viewers that filter results by tag.
type sarifResultProps struct {
	Detector string   `json:"detector"`
	Severity string   `json:"severity"`
	Context  string   `json:"context"`
	Tags     []string `json:"tags"`
}

// WriteSARIF writes r as a SARIF 2.1.0 log.
func WriteSARIF(w io.Writer, r *Report, o SARIFOptions) error {
	driver := sarif.Driver{
		Name:           "sluice-governance",
		InformationURI: "https://github.com/sluice-ci/sluice",
		Version:        o.ToolVersion,
		Rules:          []sarif.Rule{},
	}
	index := make(map[string]int)
	addRule := func(ri RuleInfo) {
		index[ri.ID] = len(driver.Rules)
		props := sarifRuleProps{Tags: []string{"governance", ri.Pack}, Precision: "high"}
		if ri.Security {
			props.Tags = append(props.Tags, "security")
			props.SecuritySeverity = ri.Severity.securitySeverity()
		}
		driver.Rules = append(driver.Rules, sarif.Rule{
			ID: ri.ID, Name: ri.Name,
			ShortDescription:     &sarif.Text{Text: ri.Description},
			FullDescription:      &sarif.Text{Text: ri.Description},
			Help:                 &sarif.Text{Text: ri.Help},
			DefaultConfiguration: &sarif.Config{Level: ri.Severity.sarifLevel()},
			Properties:           props,
		})
	}
	for _, ri := range r.Rules {
		addRule(ri)
	}
	results := []sarif.Result{}
	for _, f := range r.Findings {
		if _, ok := index[f.Rule]; !ok {
			addRule(RuleInfo{ID: f.Rule, Name: f.Rule, Description: f.Message, Help: f.Message, Severity: f.Severity, Pack: "custom"})
		}
		ruleIndex := index[f.Rule]
		region := &sarif.Region{StartLine: f.Line, StartColumn: f.Column, EndLine: f.EndLine, EndColumn: f.EndColumn}
		res := sarif.Result{
			RuleID: f.Rule, RuleIndex: &ruleIndex, Level: f.Severity.sarifLevel(),
			Message:             sarif.Text{Text: f.Message},
			Locations:           []sarif.Location{sarif.FileLocation(f.File, region)},
			PartialFingerprints: map[string]string{SARIFFingerprintKey: f.Fingerprint},
			Properties: sarifResultProps{
				Detector: f.Detector, Severity: f.Severity.String(), Context: string(f.Context),
				Tags: []string{"context:" + string(f.Context)},
			},
		}
		if f.Excerpt != "" {
			region.Snippet = &sarif.Text{Text: f.Excerpt}
		}
		if f.Suppression != nil {
			res.Suppressions = []sarif.Suppression{{Kind: string(f.Suppression.Kind), Justification: f.Suppression.Justification}}
		}
		results = append(results, res)
	}
	log := sarif.NewLog()
	log.Runs = append(log.Runs, sarif.Run{
		Tool: sarif.Tool{Driver: driver}, Invocations: []sarif.Invocation{{ExecutionSuccessful: true}},
		ColumnKind: "unicodeCodePoints", Results: results,
		Properties: runProps(r.Stats),
	})
	return sarif.Write(w, log)
}

func runProps(st Stats) sarifRunProps {
	p := sarifRunProps{FilesScanned: st.Files, LinesScanned: st.Lines, Skipped: map[string]int{}}
	for reason, n := range st.Skipped {
		if n > 0 {
			p.Skipped[string(reason)] = n
		}
	}
	return p
}
