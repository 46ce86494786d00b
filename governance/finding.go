package governance

import (
	"cmp"
	"slices"
	"time"
)

// Finding is one rule violation at one place.
type Finding struct {
	Rule     string // GOV-001, GOV-002, GOV-003, AI-001, AI-002 or a custom rule's id
	Detector string // the specific check, e.g. stripe-secret-key; a custom rule's id
	File     string // slash-separated, relative to the scanned root
	// Line and Column are 1-based; columns count Unicode code points.
	Line, Column       int
	EndLine, EndColumn int
	Message            string
	Severity           Severity
	// Context is what the file is for: code, test, fixture or docs (see Context).
	Context Context
	// Excerpt is the finding's line, trimmed, shortened and with every secret on it
	// redacted.
	Excerpt string
	// Fingerprint identifies the finding across scans: it depends on the rule, the file and
	// what matched, not on the line, so code moving above it keeps it stable.
	Fingerprint string
	// Suppression is set when the finding is accepted: inline (sluice:ignore) or by the
	// baseline. Suppressed findings never fail the gate; SARIF keeps them as suppressed.
	Suppression *Suppression
}

// Suppression says why a finding is accepted.
type Suppression struct {
	Kind          SuppressionKind
	Justification string
}

// SuppressionKind names the SARIF suppression kinds the engine produces.
type SuppressionKind string

const (
	SuppressedInSource SuppressionKind = "inSource" // a sluice:ignore comment
	SuppressedBaseline SuppressionKind = "external" // the baseline file
)

// Report is the outcome of a scan.
type Report struct {
	Findings []Finding // active and suppressed, ordered by file, line, column, rule
	Rules    []RuleInfo
	Stats    Stats
}

// Stats counts what a scan read and what it left out.
type Stats struct {
	Files    int   // text files scanned
	Bytes    int64 // bytes of those files
	Lines    int   // lines of those files
	Skipped  map[SkipReason]int
	Duration time.Duration
}

// SkipReason says why a file or directory was not scanned.
type SkipReason string

const (
	SkipBinary    SkipReason = "binary"
	SkipTooLarge  SkipReason = "too large"
	SkipGenerated SkipReason = "generated"          // codegen output: by name or a "Code generated" header
	SkipBundle    SkipReason = "vendored bundle"    // a library's build checked in: *.development.js
	SkipMinified  SkipReason = "minified"           // *.min.js, or code of very long lines
	SkipLockfile  SkipReason = "lockfile"           // package-lock.json, go.sum, ...
	SkipVendored  SkipReason = "vendored directory" // node_modules, vendor, ...
	SkipIgnored   SkipReason = "gitignored"
)

// skipOrder is the order reports list the reasons in.
var skipOrder = []SkipReason{
	SkipBinary, SkipTooLarge, SkipGenerated, SkipBundle, SkipMinified, SkipLockfile, SkipVendored, SkipIgnored,
}

// RuleInfo describes a rule for reports (SARIF's rule metadata).
type RuleInfo struct {
	ID          string
	Name        string // CamelCase, SARIF's reportingDescriptor.name
	Description string
	Help        string
	Severity    Severity // default severity; some detectors report higher or lower
	Security    bool     // a security rule: SARIF gets a security-severity
	Pack        string   // "custom" for rules from a rules file
}

// Active returns the findings that are not suppressed.
func (r *Report) Active() []Finding {
	var out []Finding
	for _, f := range r.Findings {
		if f.Suppression == nil {
			out = append(out, f)
		}
	}
	return out
}

// Failing returns the active findings at or above threshold: the ones that fail the gate.
func (r *Report) Failing(threshold Severity) []Finding {
	var out []Finding
	for _, f := range r.Findings {
		if f.Suppression == nil && f.Severity >= threshold {
			out = append(out, f)
		}
	}
	return out
}

// Suppressed counts the findings accepted inline and by the baseline.
func (r *Report) Suppressed() (inline, baseline int) {
	for _, f := range r.Findings {
		switch {
		case f.Suppression == nil:
		case f.Suppression.Kind == SuppressedBaseline:
			baseline++
		default:
			inline++
		}
	}
	return inline, baseline
}

func sortFindings(fs []Finding) {
	slices.SortFunc(fs, func(a, b Finding) int {
		return cmp.Or(
			cmp.Compare(a.File, b.File),
			cmp.Compare(a.Line, b.Line),
			cmp.Compare(a.Column, b.Column),
			cmp.Compare(a.Rule, b.Rule),
			cmp.Compare(a.Detector, b.Detector),
			cmp.Compare(a.Fingerprint, b.Fingerprint),
		)
	})
}
