package governance

import (
	"fmt"
	"strings"
)

// Severity ranks findings. The values are those of sluice.v1.Severity, so a worker converts
// with a plain cast.
type Severity int8

// Severities, lowest first.
const (
	SeverityInfo     Severity = 1
	SeverityLow      Severity = 2
	SeverityMedium   Severity = 3
	SeverityHigh     Severity = 4
	SeverityCritical Severity = 5
)

// DefaultFailOn is the threshold when none is set (a stage's governance block without
// fail_on, `sluice governance scan` without --fail-on): every finding but an informational
// one fails.
const DefaultFailOn = SeverityLow

var severityNames = [...]string{"", "info", "low", "medium", "high", "critical"}

func (s Severity) String() string {
	if s < SeverityInfo || s > SeverityCritical {
		return fmt.Sprintf("severity(%d)", s)
	}
	return severityNames[s]
}

// ParseSeverity parses info, low, medium, high or critical, case-insensitively. The SARIF
// levels are accepted too, for pipelines written with them in mind: note is low, warning
// medium and error high.
func ParseSeverity(s string) (Severity, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "info":
		return SeverityInfo, nil
	case "low", "note":
		return SeverityLow, nil
	case "medium", "warning":
		return SeverityMedium, nil
	case "high", "error":
		return SeverityHigh, nil
	case "critical":
		return SeverityCritical, nil
	}
	return 0, fmt.Errorf("%w %q: want info, low, medium, high or critical", ErrBadSeverity, s)
}

// sarifLevel maps a severity to a SARIF result level.
func (s Severity) sarifLevel() string {
	switch {
	case s >= SeverityHigh:
		return "error"
	case s == SeverityMedium:
		return "warning"
	}
	return "note"
}

// securitySeverity is the CVSS-like score GitHub code scanning reads from a rule's
// "security-severity" property.
func (s Severity) securitySeverity() string {
	switch s {
	case SeverityCritical:
		return "9.5"
	case SeverityHigh:
		return "8.0"
	case SeverityMedium:
		return "5.5"
	case SeverityLow:
		return "3.0"
	}
	return "0.0"
}
