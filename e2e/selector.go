package e2e

import (
	"fmt"
	"regexp"
	"strings"
)

// CheckSelector catches CSS selector syntax mistakes before a journey runs: unbalanced
// brackets, parentheses or quotes, empty parts of a selector list, dangling or doubled
// combinators, malformed attribute tests, "#", "." or ":" without a name, and characters
// CSS does not use outside strings. It accepts every pseudo-class name: which ones exist
// is the browser's business, and the browser's own SyntaxError fails the step if a name is
// unknown.
func CheckSelector(sel string) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w %q: %s", ErrBadSelector, sel, fmt.Sprintf(format, args...))
	}
	if strings.TrimSpace(sel) == "" {
		return bad("empty selector")
	}
	var (
		stack   []byte // open '(' and '['
		quote   byte
		attr    strings.Builder
		part    strings.Builder // the current top-level part of a selector list, outside brackets
		parts   []string
		escaped bool
	)
	for i := 0; i < len(sel); i++ {
		c := sel[i]
		inAttr := len(stack) > 0 && stack[len(stack)-1] == '['
		if inAttr {
			attr.WriteByte(c)
		}
		switch {
		case escaped:
			escaped = false
			if len(stack) == 0 {
				part.WriteByte('a') // an escaped character is part of a name
			}
			continue
		case c == '\\':
			escaped = true
			continue
		case quote != 0:
			if c == quote {
				quote = 0
			}
			continue
		case c == '"' || c == '\'':
			if len(stack) == 0 {
				return bad("quote outside [...] or (...)")
			}
			quote = c
			continue
		case c == '[' || c == '(':
			if c == '[' && inAttr {
				return bad("'[' inside an attribute test")
			}
			if c == '[' {
				attr.Reset()
			}
			stack = append(stack, c)
			if len(stack) == 1 {
				part.WriteByte(c)
			}
			continue
		case c == ']' || c == ')':
			open := byte('[')
			if c == ')' {
				open = '('
			}
			if len(stack) == 0 || stack[len(stack)-1] != open {
				return bad("unexpected %q", c)
			}
			if c == ']' {
				a := strings.TrimSuffix(attr.String(), "]")
				if !attrTest.MatchString(a) {
					return bad("malformed attribute test [%s]", a)
				}
			}
			stack = stack[:len(stack)-1]
			if len(stack) == 0 {
				part.WriteByte(c)
			}
			continue
		}
		if len(stack) > 0 {
			continue
		}
		if c == ',' {
			parts = append(parts, part.String())
			part.Reset()
			continue
		}
		if c < 0x80 && !strings.ContainsRune(selectorChars, rune(c)) &&
			!(c >= 'a' && c <= 'z') && !(c >= 'A' && c <= 'Z') && !(c >= '0' && c <= '9') {
			return bad("unexpected %q", c)
		}
		part.WriteByte(c)
	}
	switch {
	case quote != 0:
		return bad("unterminated string")
	case escaped:
		return bad("ends with a backslash")
	case len(stack) > 0:
		return bad("unclosed %q", stack[len(stack)-1])
	}
	parts = append(parts, part.String())
	for _, p := range parts {
		if err := checkCompound(strings.TrimSpace(p)); err != "" {
			return bad("%s", err)
		}
	}
	return nil
}

// selectorChars are the ASCII punctuation characters CSS selectors use outside brackets,
// besides letters and digits; anything beyond ASCII is a name character.
const selectorChars = "-_*#.:>+~ \t\n|"

// attrTest is the inside of [...]: a name, optionally an operator, a value and a flag.
var attrTest = regexp.MustCompile(`^\s*(?:[-\w*]*\|)?[-\w]+\s*(?:[~|^$*]?=\s*(?:"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|[-\w]+)\s*(?:[iIsS]\s*)?)?$`)

// checkCompound checks one selector of a list (brackets already collapsed to "[]" and
// "()"), returning what is wrong or "".
func checkCompound(p string) string {
	if p == "" {
		return "empty selector in a list"
	}
	if strings.ContainsAny(p[:1], ">+~") {
		return "starts with a combinator"
	}
	if strings.ContainsAny(p[len(p)-1:], ">+~") {
		return "ends with a combinator"
	}
	lastComb := false
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c == '>' || c == '+' || c == '~':
			if lastComb {
				return "two combinators in a row"
			}
			lastComb = true
		case c == ' ' || c == '\t' || c == '\n':
		case c == '#' || c == '.' || c == ':':
			lastComb = false
			j := i + 1
			if c == ':' && j < len(p) && p[j] == ':' {
				j++
			}
			if j >= len(p) || !isNameStart(p[j]) {
				return fmt.Sprintf("%q without a name", c)
			}
			i = j - 1
		default:
			lastComb = false
		}
	}
	return ""
}

func isNameStart(c byte) bool {
	return c == '-' || c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c >= 0x80
}
