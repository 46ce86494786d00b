package sluicev1

import (
	"fmt"
	"strings"
)

var kindSlugs = map[StageKind]string{
	StageKind_STAGE_KIND_STATIC:        "static",
	StageKind_STAGE_KIND_TEST:          "test",
	StageKind_STAGE_KIND_CONTRACT:      "contract",
	StageKind_STAGE_KIND_E2E:           "e2e",
	StageKind_STAGE_KIND_LOAD:          "load",
	StageKind_STAGE_KIND_BACKUP_VERIFY: "backup-verify",
	StageKind_STAGE_KIND_TRAFFIC_SHIFT: "traffic-shift",
}

// AllKinds lists every stage kind in a stable order.
func AllKinds() []StageKind {
	return []StageKind{
		StageKind_STAGE_KIND_STATIC, StageKind_STAGE_KIND_TEST, StageKind_STAGE_KIND_CONTRACT,
		StageKind_STAGE_KIND_E2E, StageKind_STAGE_KIND_LOAD, StageKind_STAGE_KIND_BACKUP_VERIFY,
		StageKind_STAGE_KIND_TRAFFIC_SHIFT,
	}
}

// Slug is the kind's name in pipeline files, subjects and CLI flags ("backup-verify").
func (k StageKind) Slug() string {
	if s, ok := kindSlugs[k]; ok {
		return s
	}
	return "unspecified"
}

// ParseStageKind maps a slug back to its kind.
func ParseStageKind(s string) (StageKind, error) {
	for k, slug := range kindSlugs {
		if slug == s {
			return k, nil
		}
	}
	names := make([]string, 0, len(kindSlugs))
	for _, k := range AllKinds() {
		names = append(names, k.Slug())
	}
	return StageKind_STAGE_KIND_UNSPECIFIED, fmt.Errorf("unknown kind %q (known: %s)", s, strings.Join(names, ", "))
}

// Terminal reports whether a stage in this status will not change again.
func (s StageStatus) Terminal() bool {
	switch s {
	case StageStatus_STAGE_STATUS_PASSED, StageStatus_STAGE_STATUS_FAILED,
		StageStatus_STAGE_STATUS_SKIPPED, StageStatus_STAGE_STATUS_CANCELLED:
		return true
	}
	return false
}

// Terminal reports whether a run in this status will not change again.
func (s RunStatus) Terminal() bool {
	return s == RunStatus_RUN_STATUS_PASSED || s == RunStatus_RUN_STATUS_FAILED || s == RunStatus_RUN_STATUS_CANCELLED
}

// Short is the status without its enum prefix, lower case ("passed").
func (s StageStatus) Short() string {
	return strings.ToLower(strings.TrimPrefix(s.String(), "STAGE_STATUS_"))
}

// Short is the status without its enum prefix, lower case ("passed").
func (s RunStatus) Short() string {
	return strings.ToLower(strings.TrimPrefix(s.String(), "RUN_STATUS_"))
}

// Short is the outcome without its enum prefix, lower case ("timed_out").
func (o Outcome) Short() string {
	return strings.ToLower(strings.TrimPrefix(o.String(), "OUTCOME_"))
}

// IsName reports whether s is a lowercase subject token of at most 64 bytes, starting with a
// letter or digit: [a-z0-9][a-z0-9_-]*. Pools, roles and user names are such names.
func IsName(s string) bool {
	if s == "" || len(s) > 64 || s[0] == '-' || s[0] == '_' {
		return false
	}
	for _, c := range []byte(s) {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// IsEnvName reports whether s is an environment variable name a spec or a secret grant
// may use: [A-Za-z_][A-Za-z0-9_]*.
func IsEnvName(s string) bool {
	if s == "" || s[0] >= '0' && s[0] <= '9' {
		return false
	}
	for _, c := range []byte(s) {
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// Clip cuts s to at most n bytes on a rune boundary, ending it with "..." when cut: the
// bound of a message or name that travels in a result or a run's state.
func Clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := max(n-3, 0)
	for cut > 0 && s[cut]&0xC0 == 0x80 {
		cut--
	}
	return s[:cut] + "..."
}
