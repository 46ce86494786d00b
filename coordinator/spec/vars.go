package spec

import (
	"fmt"
	"strings"

	sluicev1 "github.com/sluice-ci/sluice/proto/sluice/v1"
)

// expand replaces each ${NAME} in s with lookup(NAME) and each $${ with a literal "${". The
// result is not expanded again, so a value can never inject another reference.
//
// In strict mode a reference that lookup cannot resolve, or that is malformed, is a problem
// (one message per reference). Otherwise it is left in place for the shell of the worker that
// runs the command (e.g. ${SLUICE_SHARD_INDEX} or ${HOME:-/tmp}).
func expand(s string, lookup func(string) (string, bool), strict bool) (string, []string) {
	if !strings.Contains(s, "${") {
		return s, nil
	}
	var (
		b        strings.Builder
		problems []string
	)
	for i := 0; i < len(s); {
		rest := s[i:]
		switch {
		case strings.HasPrefix(rest, "$${"):
			b.WriteString("${")
			i += 3
			continue
		case !strings.HasPrefix(rest, "${"):
			b.WriteByte(s[i])
			i++
			continue
		}
		end := strings.IndexByte(rest, '}')
		if end < 0 {
			if strict {
				problems = append(problems, fmt.Sprintf("unclosed %q: write ${NAME}, or $${ for a literal ${", rest))
			}
			b.WriteString(rest)
			break
		}
		ref, name := rest[:end+1], rest[2:end]
		i += len(ref)
		if !sluicev1.IsEnvName(name) {
			if strict {
				problems = append(problems, fmt.Sprintf("bad variable reference %q: write ${NAME} (letters, digits, _), or $${ for a literal ${", ref))
			}
			b.WriteString(ref)
			continue
		}
		if v, ok := lookup(name); ok {
			b.WriteString(v)
			continue
		}
		if strict {
			problems = append(problems, fmt.Sprintf("undefined variable ${%s}: define it under env:, pass --set %s=VALUE, or export it (write $${%s} for a literal)", name, name, name))
		}
		b.WriteString(ref)
	}
	return b.String(), problems
}

// isToken reports whether s is safe as one NATS subject token and KV key: [A-Za-z0-9_-]+.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range []byte(s) {
		if !(c == '_' || c == '-' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}
