package governance

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// maxExcerpt is the longest excerpt, in characters.
const maxExcerpt = 160

// finish turns the file's raw findings into Findings: lines and columns, redacted
// excerpts, fingerprints, the file's context (and the severities rule_severity and
// context_severity give), suppressions.
func (s *scanner) finish(rel string, ctx Context, b []byte) {
	raws := s.raws
	slices.SortFunc(raws, func(a, b rawFinding) int {
		return cmp.Or(cmp.Compare(a.start, b.start), cmp.Compare(a.rule, b.rule),
			cmp.Compare(a.detector, b.detector), cmp.Compare(a.end, b.end))
	})
	raws = slices.CompactFunc(raws, func(a, b rawFinding) bool {
		return a.start == b.start && a.end == b.end && a.rule == b.rule && a.detector == b.detector
	})
	raws = slices.DeleteFunc(raws, func(r rawFinding) bool {
		if !r.generic {
			return false
		}
		for _, o := range raws {
			if !o.generic && o.rule == r.rule && o.start < r.end && r.start < o.end {
				return true
			}
		}
		return false
	})
	slices.SortFunc(s.spans, func(a, b span) int { return cmp.Compare(a.start, b.start) })

	occurrences := make(map[string]int)
	line, pos := 1, 0
	for _, r := range raws {
		line += bytes.Count(b[pos:r.start], []byte{'\n'})
		pos = r.start
		ls, le := lineBounds(b, r.start)
		endLine := line + bytes.Count(b[r.start:r.end], []byte{'\n'})
		els := ls
		if endLine != line {
			els = bytes.LastIndexByte(b[:r.end], '\n') + 1
		}
		col := utf8.RuneCount(b[ls:r.start]) + 1
		f := Finding{
			Rule: r.rule, Detector: r.detector, File: rel,
			Line: line, Column: col, EndLine: endLine, EndColumn: utf8.RuneCount(b[els:r.end]) + 1,
			Message: r.msg, Severity: r.severity, Context: ctx,
			Excerpt: s.excerpt(b, ls, le, col),
		}
		if sev, ok := s.e.ruleSev[r.rule]; ok {
			f.Severity = sev
		}
		if sev, ok := s.e.ctxSev[r.rule][ctx]; ok {
			f.Severity = sev
		}
		k := r.rule + "\x00" + r.detector + "\x00" + r.key
		n := occurrences[k]
		occurrences[k] = n + 1
		f.Fingerprint = fingerprint(r.rule, r.detector, rel, r.key, n)

		if sup, bare := suppressionNear(b, r, ls, le); sup != nil {
			f.Suppression = sup
		} else if bare {
			f.Message += " (a sluice:ignore without a reason does not suppress it: add one)"
		}
		if f.Suppression == nil && s.e.baseline.has(f.Fingerprint) {
			f.Suppression = &Suppression{Kind: SuppressedBaseline, Justification: "accepted in baseline " + s.e.baseline.File}
		}
		s.findings = append(s.findings, f)
	}
}

// fingerprint hashes what identifies a finding: the rule and detector, the file, what
// matched (the secret itself only ever as part of this hash) and which occurrence of the
// same match in the file it is.
func fingerprint(rule, detector, file, key string, occurrence int) string {
	h := sha256.New()
	for _, part := range []string{"sluice/v1", rule, detector, file, key, strconv.Itoa(occurrence)} {
		h.Write([]byte(part))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// excerpt renders b[ls:le] with every secret span replaced by its mask, whitespace
// trimmed, control characters made spaces, and at most maxExcerpt characters kept around
// column col.
func (s *scanner) excerpt(b []byte, ls, le, col int) string {
	var sb strings.Builder
	pos := ls
	for _, sp := range s.spans {
		if sp.end <= pos || sp.start >= le {
			continue
		}
		if sp.start > pos {
			sb.Write(b[pos:sp.start])
		}
		sb.WriteString(sp.mask)
		pos = min(sp.end, le)
	}
	if pos < le {
		sb.Write(b[pos:le])
	}
	runes := []rune(sb.String())
	for i, r := range runes {
		if r < 0x20 || r == 0x7f {
			runes[i] = ' '
		}
	}
	// Trim, keeping track of where the column went.
	lead := 0
	for lead < len(runes) && runes[lead] == ' ' {
		lead++
	}
	runes = runes[lead:]
	for len(runes) > 0 && runes[len(runes)-1] == ' ' {
		runes = runes[:len(runes)-1]
	}
	if len(runes) <= maxExcerpt {
		return string(runes)
	}
	from := max(0, min(col-1-lead-maxExcerpt/3, len(runes)-maxExcerpt))
	to := from + maxExcerpt
	out := string(runes[from:to])
	if from > 0 {
		out = "…" + out
	}
	if to < len(runes) {
		out += "…"
	}
	return out
}

// ignoreMarker starts an inline suppression: sluice:ignore RULE-ID[,RULE-ID...] reason.
const ignoreMarker = "sluice:ignore"

// suppressionNear looks for a suppression of r at its first line and, for a finding over
// several lines, at the line of what it is about (where a sluice:ignore written before
// findings began at their construct sits).
func suppressionNear(b []byte, r rawFinding, ls, le int) (*Suppression, bool) {
	sup, bare := suppressionAt(b, ls, le, r.rule, r.detector)
	if sup == nil && r.anchor > le {
		als, ale := lineBounds(b, r.anchor)
		var bare2 bool
		sup, bare2 = suppressionAt(b, als, ale, r.rule, r.detector)
		bare = bare || bare2
	}
	if sup != nil {
		return sup, false
	}
	return nil, bare
}

// suppressionAt looks for a suppression of rule (or of detector) on the finding's line,
// then on the line above. bare reports a matching marker without a reason, which does not
// suppress.
func suppressionAt(b []byte, ls, le int, rule, detector string) (sup *Suppression, bare bool) {
	lines := [][]byte{b[ls:le]}
	if ls > 0 {
		pls, ple := lineBounds(b, ls-1)
		lines = append(lines, b[pls:ple])
	}
	for _, line := range lines {
		rest := line
		for {
			i := bytes.Index(rest, []byte(ignoreMarker))
			if i < 0 {
				break
			}
			rest = rest[i+len(ignoreMarker):]
			ids, reason := parseIgnore(rest)
			if !matchesID(ids, rule, detector) {
				continue
			}
			if reason == "" {
				bare = true
				continue
			}
			return &Suppression{Kind: SuppressedInSource, Justification: reason}, false
		}
	}
	return nil, bare
}

// parseIgnore reads " RULE-ID[,RULE-ID] reason text" after the marker, stopping the reason
// at a comment's closing "*/" or "-->".
func parseIgnore(b []byte) (ids []string, reason string) {
	s := strings.TrimLeft(string(b), " \t:")
	idPart, rest, _ := strings.Cut(s, " ")
	for _, id := range strings.Split(idPart, ",") {
		if id = strings.TrimSpace(id); id != "" {
			ids = append(ids, id)
		}
	}
	for _, closer := range []string{"*/", "-->"} {
		if i := strings.Index(rest, closer); i >= 0 {
			rest = rest[:i]
		}
	}
	return ids, strings.Trim(strings.TrimSpace(rest), "-:— \t\r")
}

func matchesID(ids []string, rule, detector string) bool {
	for _, id := range ids {
		if strings.EqualFold(id, rule) || strings.EqualFold(id, detector) {
			return true
		}
	}
	return false
}
