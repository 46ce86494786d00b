package governance

import "bytes"

// Prechecks run on each keyword hit before a detector's regex: a few byte comparisons that
// turn away the common hits a regex would reject more slowly (a "token" that is not
// assigned a literal, "Asia" in prose, a URL without credentials). They must never reject
// what the regex would accept.

// precheck is called with the keyword's span b[start:end].
type precheck func(b []byte, start, end int) bool

// exactly requires the keyword in the case the token format uses (sk_live_, AKIA, ghp_),
// preceded by a non-word character.
func exactly(words ...string) precheck {
	return func(b []byte, start, end int) bool {
		if start > 0 && isWordByte(b[start-1]) {
			return false
		}
		for _, w := range words {
			if string(b[start:end]) == w {
				return true
			}
		}
		return false
	}
}

func isWordByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_'
}

func isKeyByte(c byte) bool { return isWordByte(c) || c == '.' || c == '-' }

// assigned requires that the identifier holding the keyword is assigned with = : := or =>
// and that a quoted literal follows (or, with bare, any value).
func assigned(bare bool) precheck {
	return func(b []byte, _, end int) bool {
		i := end
		for lim := min(len(b), end+40); i < lim && isKeyByte(b[i]); i++ {
		}
		if i < len(b) && (b[i] == '"' || b[i] == '\'' || b[i] == ']') {
			i++
		}
		for i < len(b) && (b[i] == ' ' || b[i] == '\t') {
			i++
		}
		if i >= len(b) {
			return false
		}
		switch b[i] {
		case ':':
			i++
			if i < len(b) && b[i] == '=' {
				i++
			}
		case '=':
			i++
			if i < len(b) && b[i] == '>' {
				i++
			} else if i < len(b) && b[i] == '=' {
				return false
			}
		default:
			return false
		}
		for i < len(b) && (b[i] == ' ' || b[i] == '\t') {
			i++
		}
		if i >= len(b) {
			return false
		}
		switch c := b[i]; c {
		case '"', '\'', '`':
			return true
		case '\n', '\r', '$', '%', '<', '{', '@':
			// Bare values starting so are references or placeholders (isPlaceholder).
			return false
		case '[':
			return false // a YAML or TOML list (secrets: [DATABASE_URL])
		default:
			return bare
		}
	}
}

// urlCredentials requires user:password@ right after ://.
func urlCredentials(b []byte, _, end int) bool {
	colon := false
	for i := end; i < len(b) && i < end+400; i++ {
		switch b[i] {
		case ':':
			colon = true
		case '@':
			return colon && i > end
		case ' ', '\t', '\r', '\n', '/', '"', '\'', '`':
			return false
		}
	}
	return false
}

// jwtShape requires eyJ, at least 8 base64url characters, a dot and eyJ again.
func jwtShape(b []byte, start, end int) bool {
	if string(b[start:end]) != "eyJ" {
		return false
	}
	i := end
	for i < len(b) && (isWordByte(b[i]) || b[i] == '-') {
		i++
	}
	return i-end >= 8 && bytes.HasPrefix(b[i:], []byte(".eyJ"))
}

// pemHeader requires the upper-case PRIVATE KEY of a PEM header.
func pemHeader(b []byte, start, end int) bool {
	return string(b[start:end]) == "PRIVATE KEY" && bytes.Contains(b[max(0, start-60):start], []byte("-----BEGIN"))
}
