package governance

import (
	"encoding/json"
	"fmt"
	"io"
	"net/url"
)

// SARIF 2.1.0 output (OASIS Static Analysis Results Interchange Format), as GitHub code
// scanning and other viewers read it: rules with their metadata, one result per finding
// with its ruleIndex, a physical location relative to the scanned root (uriBaseId
// SRCROOT), a redacted snippet, and a partial fingerprint that is stable across scans.
// Suppressed findings stay in the log with a suppression (inSource or external), so a
// viewer shows them as such.

const (
	sarifSchema  = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
	sarifVersion = "2.1.0"
	// SARIFFingerprintKey names the partial fingerprint of results.
	SARIFFingerprintKey = "sluiceFingerprint/v1"
	srcRoot             = "SRCROOT"
)

// SARIFOptions describe the tool in the log.
type SARIFOptions struct {
	ToolVersion string // e.g. the sluice version; optional
}

type sarifLog struct {
	Schema  string     `json:"$schema"`
	Version string     `json:"version"`
	Runs    []sarifRun `json:"runs"`
}

type sarifRun struct {
	Tool        sarifTool         `json:"tool"`
	Invocations []sarifInvocation `json:"invocations"`
	ColumnKind  string            `json:"columnKind"`
	Results     []sarifResult     `json:"results"`
	Properties  sarifRunProps     `json:"properties"`
}

// sarifRunProps say what the scan read and what it left out, by reason (SkipReason), so
// a viewer can tell a clean tree from an unscanned one.
type sarifRunProps struct {
	FilesScanned int            `json:"filesScanned"`
	LinesScanned int            `json:"linesScanned"`
	Skipped      map[string]int `json:"skipped"`
}

type sarifInvocation struct {
	ExecutionSuccessful bool `json:"executionSuccessful"`
}

type sarifTool struct {
	Driver sarifDriver `json:"driver"`
}

type sarifDriver struct {
	Name           string      `json:"name"`
	InformationURI string      `json:"informationUri"`
	Version        string      `json:"version,omitempty"`
	Rules          []sarifRule `json:"rules"`
}

type sarifText struct {
	Text string `json:"text"`
}

type sarifRule struct {
	ID                   string         `json:"id"`
	Name                 string         `json:"name"`
	ShortDescription     sarifText      `json:"shortDescription"`
	FullDescription      sarifText      `json:"fullDescription"`
	Help                 sarifText      `json:"help"`
	DefaultConfiguration sarifConfig    `json:"defaultConfiguration"`
	Properties           sarifRuleProps `json:"properties"`
}

type sarifConfig struct {
	Level string `json:"level"`
}

type sarifRuleProps struct {
	Tags             []string `json:"tags"`
	Precision        string   `json:"precision"`
	SecuritySeverity string   `json:"security-severity,omitempty"`
}

type sarifResult struct {
	RuleID              string             `json:"ruleId"`
	RuleIndex           int                `json:"ruleIndex"`
	Level               string             `json:"level"`
	Message             sarifText          `json:"message"`
	Locations           []sarifLocation    `json:"locations"`
	PartialFingerprints map[string]string  `json:"partialFingerprints"`
	Suppressions        []sarifSuppression `json:"suppressions,omitempty"`
	Properties          sarifResultProps   `json:"properties"`
}

// sarifResultProps: context (code, test, fixture, docs) is also a tag, "context:test", for
// viewers that filter results by tag.
type sarifResultProps struct {
	Detector string   `json:"detector"`
	Severity string   `json:"severity"`
	Context  string   `json:"context"`
	Tags     []string `json:"tags"`
}

type sarifLocation struct {
	PhysicalLocation sarifPhysical `json:"physicalLocation"`
}

type sarifPhysical struct {
	ArtifactLocation sarifArtifact `json:"artifactLocation"`
	Region           sarifRegion   `json:"region"`
}

type sarifArtifact struct {
	URI       string `json:"uri"`
	URIBaseID string `json:"uriBaseId"`
}

type sarifRegion struct {
	StartLine   int        `json:"startLine"`
	StartColumn int        `json:"startColumn"`
	EndLine     int        `json:"endLine"`
	EndColumn   int        `json:"endColumn"`
	Snippet     *sarifText `json:"snippet,omitempty"`
}

type sarifSuppression struct {
	Kind          string `json:"kind"`
	Justification string `json:"justification,omitempty"`
}

// WriteSARIF writes r as a SARIF 2.1.0 log.
func WriteSARIF(w io.Writer, r *Report, o SARIFOptions) error {
	driver := sarifDriver{
		Name:           "sluice-governance",
		InformationURI: "https://github.com/sluice-ci/sluice",
		Version:        o.ToolVersion,
		Rules:          []sarifRule{},
	}
	index := make(map[string]int)
	addRule := func(ri RuleInfo) {
		index[ri.ID] = len(driver.Rules)
		props := sarifRuleProps{Tags: []string{"governance", ri.Pack}, Precision: "high"}
		if ri.Security {
			props.Tags = append(props.Tags, "security")
			props.SecuritySeverity = ri.Severity.securitySeverity()
		}
		driver.Rules = append(driver.Rules, sarifRule{
			ID: ri.ID, Name: ri.Name,
			ShortDescription:     sarifText{Text: ri.Description},
			FullDescription:      sarifText{Text: ri.Description},
			Help:                 sarifText{Text: ri.Help},
			DefaultConfiguration: sarifConfig{Level: ri.Severity.sarifLevel()},
			Properties:           props,
		})
	}
	for _, ri := range r.Rules {
		addRule(ri)
	}
	results := []sarifResult{}
	for _, f := range r.Findings {
		if _, ok := index[f.Rule]; !ok {
			addRule(RuleInfo{ID: f.Rule, Name: f.Rule, Description: f.Message, Help: f.Message, Severity: f.Severity, Pack: "custom"})
		}
		res := sarifResult{
			RuleID: f.Rule, RuleIndex: index[f.Rule], Level: f.Severity.sarifLevel(),
			Message: sarifText{Text: f.Message},
			Locations: []sarifLocation{{PhysicalLocation: sarifPhysical{
				ArtifactLocation: sarifArtifact{URI: fileURI(f.File), URIBaseID: srcRoot},
				Region: sarifRegion{
					StartLine: f.Line, StartColumn: f.Column, EndLine: f.EndLine, EndColumn: f.EndColumn,
				},
			}}},
			PartialFingerprints: map[string]string{SARIFFingerprintKey: f.Fingerprint},
			Properties: sarifResultProps{
				Detector: f.Detector, Severity: f.Severity.String(), Context: string(f.Context),
				Tags: []string{"context:" + string(f.Context)},
			},
		}
		if f.Excerpt != "" {
			res.Locations[0].PhysicalLocation.Region.Snippet = &sarifText{Text: f.Excerpt}
		}
		if f.Suppression != nil {
			res.Suppressions = []sarifSuppression{{Kind: string(f.Suppression.Kind), Justification: f.Suppression.Justification}}
		}
		results = append(results, res)
	}
	log := sarifLog{
		Schema: sarifSchema, Version: sarifVersion,
		Runs: []sarifRun{{
			Tool: sarifTool{Driver: driver}, Invocations: []sarifInvocation{{ExecutionSuccessful: true}},
			ColumnKind: "unicodeCodePoints", Results: results,
			Properties: runProps(r.Stats),
		}},
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(log); err != nil {
		return fmt.Errorf("write SARIF: %w", err)
	}
	return nil
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

// fileURI is a relative path as a URI reference: each segment percent-encoded.
func fileURI(rel string) string {
	return (&url.URL{Path: rel}).EscapedPath()
}
