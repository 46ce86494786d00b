package governance

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// WriteText writes the human table of the active findings and a summary line:
//
//	critical  GOV-001  src/app/pay.ts:2:28   Stripe live secret key [stripe-secret-key]
//	                   > const stripe = new Stripe("sk_live_*****")
func WriteText(w io.Writer, r *Report, threshold Severity) error {
	active := r.Active()
	locs := make([]string, len(active))
	width, ruleWidth := 0, 0
	for i, f := range active {
		locs[i] = fmt.Sprintf("%s:%d:%d", f.File, f.Line, f.Column)
		width = max(width, utf8.RuneCountInString(locs[i]))
		ruleWidth = max(ruleWidth, len(f.Rule))
	}
	var b strings.Builder
	for i, f := range active {
		tag := f.Detector
		if f.Context != ContextCode && f.Context != "" {
			tag += ", in " + string(f.Context)
		}
		fmt.Fprintf(&b, "%-8s  %-*s  %s%s  %s [%s]\n", f.Severity, ruleWidth, f.Rule, locs[i],
			strings.Repeat(" ", width-utf8.RuneCountInString(locs[i])), f.Message, tag)
		if f.Excerpt != "" {
			fmt.Fprintf(&b, "%s  > %s\n", strings.Repeat(" ", 8+2+ruleWidth), f.Excerpt)
		}
	}
	if len(active) > 0 {
		b.WriteString("\n")
	}
	b.WriteString(Summary(r, threshold))
	b.WriteString("\n")
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("write findings: %w", err)
	}
	return nil
}

// Summary is a one-line account of a report: what fails the gate, what was scanned, what
// was suppressed or skipped.
func Summary(r *Report, threshold Severity) string {
	active := r.Active()
	failing := r.Failing(threshold)
	var parts []string
	switch {
	case len(active) == 0:
		parts = append(parts, "governance: no findings")
	default:
		counts := make(map[Severity]int)
		for _, f := range active {
			counts[f.Severity]++
		}
		var bySev []string
		for s := SeverityCritical; s >= SeverityInfo; s-- {
			if counts[s] > 0 {
				bySev = append(bySev, fmt.Sprintf("%d %s", counts[s], s))
			}
		}
		parts = append(parts, fmt.Sprintf("governance: %s (%s), %d at or above %s",
			plural(len(active), "finding"), strings.Join(bySev, ", "), len(failing), threshold))
	}
	scanned := fmt.Sprintf("%s scanned (%s, %s)", plural(r.Stats.Files, "file"), byteSize(r.Stats.Bytes), plural(r.Stats.Lines, "line"))
	if r.Stats.Duration > 0 {
		scanned += fmt.Sprintf(" in %.2fs", r.Stats.Duration.Seconds())
	}
	parts = append(parts, scanned)
	if inline, base := r.Suppressed(); inline+base > 0 {
		parts = append(parts, fmt.Sprintf("%d suppressed inline, %d by the baseline", inline, base))
	}
	var skipped []string
	for _, reason := range skipOrder {
		if n := r.Stats.Skipped[reason]; n > 0 {
			skipped = append(skipped, fmt.Sprintf("%d %s", n, reason))
		}
	}
	if len(skipped) > 0 {
		parts = append(parts, "skipped "+strings.Join(skipped, ", "))
	}
	return strings.Join(parts, "; ")
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}

func byteSize(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// jsonFinding is the --format json form of a finding.
type jsonFinding struct {
	Rule          string `json:"rule"`
	Detector      string `json:"detector"`
	File          string `json:"file"`
	Line          int    `json:"line"`
	Column        int    `json:"column"`
	EndLine       int    `json:"end_line"`
	EndColumn     int    `json:"end_column"`
	Severity      string `json:"severity"`
	Context       string `json:"context"`
	Message       string `json:"message"`
	Excerpt       string `json:"excerpt"`
	Fingerprint   string `json:"fingerprint"`
	Suppressed    string `json:"suppressed,omitempty"` // inSource or external
	Justification string `json:"justification,omitempty"`
}

// WriteJSONLines writes one JSON object per finding, one per line.
func WriteJSONLines(w io.Writer, findings []Finding) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	for _, f := range findings {
		j := jsonFinding{
			Rule: f.Rule, Detector: f.Detector, File: f.File, Line: f.Line, Column: f.Column,
			EndLine: f.EndLine, EndColumn: f.EndColumn, Severity: f.Severity.String(), Context: string(f.Context),
			Message: f.Message, Excerpt: f.Excerpt, Fingerprint: f.Fingerprint,
		}
		if f.Suppression != nil {
			j.Suppressed, j.Justification = string(f.Suppression.Kind), f.Suppression.Justification
		}
		if err := enc.Encode(j); err != nil {
			return fmt.Errorf("write findings: %w", err)
		}
	}
	return nil
}
