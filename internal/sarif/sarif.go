// Package sarif holds the SARIF 2.1.0 log (OASIS Static Analysis Results Interchange
// Format) that Sluice's reports write, the governance findings and the linters' warnings,
// as GitHub code scanning and other viewers read it. It is the subset of the format those
// reports fill; each writer decides what goes in it.
package sarif

import (
	"encoding/json"
	"fmt"
	"io"
	"net/url"
)

const (
	Schema  = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
	Version = "2.1.0"
	// SrcRoot is the uriBaseId of paths relative to the scanned tree.
	SrcRoot = "SRCROOT"
)

// Log is a SARIF log: one run per tool.
type Log struct {
	Schema  string `json:"$schema"`
	Version string `json:"version"`
	Runs    []Run  `json:"runs"`
}

// NewLog is an empty log of this package's schema and version.
func NewLog() Log { return Log{Schema: Schema, Version: Version, Runs: []Run{}} }

type Run struct {
	Tool        Tool         `json:"tool"`
	Invocations []Invocation `json:"invocations,omitempty"`
	ColumnKind  string       `json:"columnKind"`
	Results     []Result     `json:"results"`
	Properties  any          `json:"properties,omitempty"`
}

type Invocation struct {
	ExecutionSuccessful bool `json:"executionSuccessful"`
}

type Tool struct {
	Driver Driver `json:"driver"`
}

type Driver struct {
	Name           string `json:"name"`
	InformationURI string `json:"informationUri,omitempty"`
	Version        string `json:"version,omitempty"`
	Rules          []Rule `json:"rules"`
}

type Text struct {
	Text string `json:"text"`
}

type Rule struct {
	ID                   string  `json:"id"`
	Name                 string  `json:"name,omitempty"`
	ShortDescription     *Text   `json:"shortDescription,omitempty"`
	FullDescription      *Text   `json:"fullDescription,omitempty"`
	Help                 *Text   `json:"help,omitempty"`
	DefaultConfiguration *Config `json:"defaultConfiguration,omitempty"`
	Properties           any     `json:"properties,omitempty"`
}

type Config struct {
	Level string `json:"level"`
}

// Result is one finding. RuleIndex is a pointer because 0 is an index and absent is not.
type Result struct {
	RuleID              string            `json:"ruleId,omitempty"`
	RuleIndex           *int              `json:"ruleIndex,omitempty"`
	Level               string            `json:"level"`
	Message             Text              `json:"message"`
	Locations           []Location        `json:"locations,omitempty"`
	PartialFingerprints map[string]string `json:"partialFingerprints,omitempty"`
	Suppressions        []Suppression     `json:"suppressions,omitempty"`
	Properties          any               `json:"properties,omitempty"`
}

type Location struct {
	PhysicalLocation Physical `json:"physicalLocation"`
}

type Physical struct {
	ArtifactLocation Artifact `json:"artifactLocation"`
	Region           *Region  `json:"region,omitempty"`
}

type Artifact struct {
	URI       string `json:"uri"`
	URIBaseID string `json:"uriBaseId"`
}

type Region struct {
	StartLine   int   `json:"startLine"`
	StartColumn int   `json:"startColumn,omitempty"`
	EndLine     int   `json:"endLine,omitempty"`
	EndColumn   int   `json:"endColumn,omitempty"`
	Snippet     *Text `json:"snippet,omitempty"`
}

type Suppression struct {
	Kind          string `json:"kind"`
	Justification string `json:"justification,omitempty"`
}

// FileLocation is a location in the file at rel, a slash-separated path relative to the
// scanned tree, percent-encoded segment by segment as a URI reference.
func FileLocation(rel string, region *Region) Location {
	return Location{PhysicalLocation: Physical{
		ArtifactLocation: Artifact{URI: (&url.URL{Path: rel}).EscapedPath(), URIBaseID: SrcRoot},
		Region:           region,
	}}
}

// Write encodes l indented, with <, > and & as they are (a snippet stays readable).
func Write(w io.Writer, l Log) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(l); err != nil {
		return fmt.Errorf("write SARIF: %w", err)
	}
	return nil
}
