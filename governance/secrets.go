package governance

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"math"
	"net/url"
	"regexp"
	"strings"
)

// The secrets pack (GOV-001): gitleaks-style detectors. Each is a regex that runs only on
// lines where one of its keywords occurs, with the secret in a capture group that must
// pass the placeholder filter, the detector's minimum Shannon entropy and its own checks.
// Secrets are looked for in every text file: code, configs, manifests and docs alike.

const ruleSecrets = "GOV-001"

// allKinds: every kind of text file (a custom rule with scope: all).
const allKinds = 1<<kindText | 1<<kindProse | 1<<kindConfig | 1<<kindShell | 1<<kindCode |
	1<<kindBrace | 1<<kindPython | 1<<kindSQL

// codeKinds: where code rules run: code, SQL and configs, never prose.
const codeKinds = 1<<kindConfig | 1<<kindShell | 1<<kindCode | 1<<kindBrace | 1<<kindPython | 1<<kindSQL

// assign matches the assignment forms of code and configs: =, :=, :, =>.
const assign = `["'\]]?\s*(?::=|=>|=|:)\s*`

func secretDetectors() []*rxRule {
	return []*rxRule{
		{
			detector: "stripe-secret-key", title: "Stripe live secret key", severity: SeverityCritical,
			re:       regexp.MustCompile(`\b((?:sk|rk)_(?:live|prod)_[0-9A-Za-z]{20,247})\b`),
			keywords: []string{"sk_live_", "rk_live_", "sk_prod_", "rk_prod_"},
			pre:      exactly("sk_live_", "rk_live_", "sk_prod_", "rk_prod_"),
			entropy:  3.0,
			check: func(m *match) bool {
				if bytes.HasPrefix(m.secret, []byte("rk_")) {
					m.title, m.severity = "Stripe live restricted key", SeverityHigh
				}
				return true
			},
		},
		{
			detector: "aws-access-key-id", title: "AWS access key id", severity: SeverityHigh,
			re:       regexp.MustCompile(`\b((?:AKIA|ASIA|ABIA|ACCA)[A-Z2-7]{16})\b`),
			keywords: []string{"AKIA", "ASIA", "ABIA", "ACCA"},
			pre:      exactly("AKIA", "ASIA", "ABIA", "ACCA"),
			entropy:  2.5,
		},
		{
			detector: "aws-secret-access-key", title: "AWS secret access key", severity: SeverityCritical,
			re: regexp.MustCompile(`(?i)(?:aws[_.\-]?secret[_.\-]?(?:access[_.\-]?)?key|secret[_.\-]?access[_.\-]?key)` + assign +
				`["']?([A-Za-z0-9/+]{40})(?:[^A-Za-z0-9/+=]|$)`),
			keywords: []string{"secret_access", "secretaccess", "secret-access", "aws_secret", "awssecret"},
			pre:      assigned(true),
			entropy:  4.0,
		},
		{
			detector: "github-token", title: "GitHub token", severity: SeverityCritical,
			re:       regexp.MustCompile(`\b((?:ghp|gho|ghu|ghs|ghr)_[0-9A-Za-z]{36})\b`),
			keywords: []string{"ghp_", "gho_", "ghu_", "ghs_", "ghr_"},
			pre:      exactly("ghp_", "gho_", "ghu_", "ghs_", "ghr_"),
			entropy:  3.0,
		},
		{
			detector: "github-fine-grained-token", title: "GitHub fine-grained personal access token", severity: SeverityCritical,
			re:       regexp.MustCompile(`\b(github_pat_[0-9A-Za-z]{22}_[0-9A-Za-z]{59})\b`),
			keywords: []string{"github_pat_"},
			pre:      exactly("github_pat_"),
			entropy:  3.0,
		},
		{
			detector: "slack-token", title: "Slack token", severity: SeverityHigh,
			re: regexp.MustCompile(`\b(xox[abposre]-[0-9]{6,}-[0-9A-Za-z-]{8,250}|` +
				`xapp-[0-9]-[A-Z0-9]{8,}-[0-9]{8,}-[A-Za-z0-9]{20,})\b`),
			keywords: []string{"xoxb-", "xoxp-", "xoxa-", "xoxo-", "xoxs-", "xoxr-", "xoxe-", "xapp-"},
			pre:      exactly("xoxb-", "xoxp-", "xoxa-", "xoxo-", "xoxs-", "xoxr-", "xoxe-", "xapp-"),
			entropy:  3.0,
		},
		{
			detector: "slack-webhook-url", title: "Slack incoming webhook URL", severity: SeverityHigh,
			re:       regexp.MustCompile(`(https://hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9_]{8,12}/[A-Za-z0-9_]{8,12}/[A-Za-z0-9_]{16,})`),
			keywords: []string{"hooks.slack.com"},
			entropy:  3.0,
		},
		{
			detector: "private-key", title: "private key block", severity: SeverityCritical,
			// The body is at least 64 characters of base64 (and escaped newlines, for keys
			// pasted into JSON): a BEGIN line in a doc, followed by "..." or a placeholder,
			// is not a key.
			re: regexp.MustCompile(`-----BEGIN[ A-Z0-9]{0,40} PRIVATE KEY(?: BLOCK)?-----` +
				`(?:\s|\\n|\\r)*(?:[A-Za-z-]+: [^\r\n\\]*(?:\r?\n|\\n))*(?:\s|\\n|\\r)*` +
				`([A-Za-z0-9+/=\s\\]{64,}?)` +
				`-----END[ A-Z0-9]{0,40} PRIVATE KEY(?: BLOCK)?-----`),
			keywords: []string{"private key"},
			pre:      pemHeader,
			entropy:  4.0, window: 64 << 10,
		},
		{
			detector: "jwt", title: "JSON Web Token", severity: SeverityHigh,
			re:       regexp.MustCompile(`\b(eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{16,})`),
			keywords: []string{"eyJ"},
			pre:      jwtShape,
			entropy:  3.0,
			check:    checkJWT,
		},
		{
			detector: "url-password", title: "password in a URL", severity: SeverityHigh,
			re: regexp.MustCompile(`\b[A-Za-z][A-Za-z0-9+.\-]{1,30}://[^\s:@/'"` + "`" + `]{1,128}:` +
				`([^\s@/'"` + "`" + `]{1,256})@([A-Za-z0-9._\-]+|\[[0-9A-Fa-f:.]+\])`),
			keywords: []string{"://"},
			pre:      urlCredentials,
			entropy:  3.0,
			check:    checkURLPassword,
		},
		{
			detector: "generic-secret", title: "hard-coded secret", severity: SeverityHigh,
			re: regexp.MustCompile(`(?i)([A-Za-z0-9_.\-]{0,40}?` + genericKeys + `[A-Za-z0-9_.\-]{0,30})` + assign +
				`(?:"([^"\\\r\n]{8,200})"|'([^'\\\r\n]{8,200})'|` + "`" + `([^` + "`" + `\\\r\n]{8,200})` + "`" + `)`),
			keywords: genericKeywords,
			pre:      assigned(false),
			entropy:  3.0, generic: true,
			check: checkGeneric,
		},
		{
			// Configs and env files write values bare: PASSWORD=..., password: ...
			detector: "generic-secret", title: "hard-coded secret", severity: SeverityHigh,
			re: regexp.MustCompile(`(?im)(?:^|[\s{,])(?:export\s+)?([A-Za-z0-9_.\-]{0,40}?` + genericKeys + `[A-Za-z0-9_.\-]{0,30})` +
				`\s*[=:]\s*([^\s"'` + "`" + `#;,]{8,200})(?:[\s#;,]|$)`),
			keywords: genericKeywords,
			pre:      assigned(true),
			entropy:  3.0, generic: true, kinds: 1<<kindConfig | 1<<kindShell | 1<<kindText,
			check: checkGeneric,
		},
	}
}

const genericKeys = `(?:password|passwd|pwd|secret|api[_.\-]?key|access[_.\-]?key|token|credential|private[_.\-]?key)`

var genericKeywords = []string{
	"password", "passwd", "pwd", "secret", "api_key", "apikey", "api-key", "api.key",
	"access_key", "accesskey", "access-key", "token", "credential", "private_key", "privatekey",
}

// match is one candidate of a regex rule, for its checks to inspect and adjust.
type match struct {
	line     []byte // the text the regex ran on
	sub      []int  // submatch indexes into line
	secret   []byte // the reported capture
	title    string
	severity Severity
}

// placeholderWords mark a value as documentation, a template or a test fixture.
var placeholderWords = []string{
	"example", "sample", "placeholder", "dummy", "changeme", "change_me", "change-me",
	"your_", "your-", "yourkey", "yourtoken", "yoursecret", "yourpassword", "xxxx", "****",
	"...", "<", ">", "${", "{{", "}}", "%s", "%(", "redacted", "fake", "insert", "replace",
	"lorem", "abcdefgh", "12345678", "01234567", "notreal", "not_real", "not-a-",
	"hunter2", "12345", "todo", "abc123", "mock", "invalid",
	// Values that name themselves (my-secret-token, tok-1234-very-secret) are demo and test
	// values: real ones are random.
	"secret", "password", "passwd", "passphrase", "token",
}

// isPlaceholder reports whether a secret is a placeholder, a template variable or an
// environment reference rather than a real value.
func isPlaceholder(s []byte) bool {
	if len(s) == 0 {
		return true
	}
	switch s[0] {
	case '$', '%', '<', '{', '@':
		return true
	}
	for _, w := range placeholderWords {
		if containsFold(s, w) {
			return true
		}
	}
	// One character repeated: "AAAAAAAA", "00000000".
	return bytes.Count(s, s[:1]) == len(s)
}

// entropy is the Shannon entropy of b in bits per byte.
func entropy(b []byte) float64 {
	if len(b) == 0 {
		return 0
	}
	var counts [256]int
	for _, c := range b {
		counts[c]++
	}
	n := float64(len(b))
	var h float64
	for _, c := range counts {
		if c > 0 {
			p := float64(c) / n
			h -= p * math.Log2(p)
		}
	}
	return h
}

// tokenPrefixes are the fixed prefixes of token formats: the entropy of a token is
// measured after them, and redaction keeps them, since they say what leaked without
// revealing any of it.
var tokenPrefixes = []string{
	"sk_live_", "rk_live_", "sk_prod_", "rk_prod_", "ghp_", "gho_", "ghu_", "ghs_", "ghr_",
	"github_pat_", "xoxb-", "xoxp-", "xoxa-", "xoxo-", "xoxs-", "xoxr-", "xoxe-", "xapp-",
	"AKIA", "ASIA", "ABIA", "ACCA", "https://hooks.slack.com/",
}

func tokenPrefix(s []byte) string {
	for _, p := range tokenPrefixes {
		if bytes.HasPrefix(s, []byte(p)) {
			return p
		}
	}
	return ""
}

// redact returns a form of secret that says what it is without revealing it: a token
// format's prefix, or at most an eighth of the characters (never more than 4), then a
// fixed mask that does not tell the length either.
func redact(secret []byte) string {
	p := tokenPrefix(secret)
	if p == "" {
		n := min(4, len(secret)/8)
		p = string(secret[:n])
	}
	return p + "*****"
}

// checkJWT decodes a token's header and payload: a string that does not decode to JSON
// objects is not a JWT, an unsigned token (alg none) protects nothing, a Supabase anon key
// is public by design, and the jwt.io sample token is documentation. A Supabase
// service_role key bypasses row level security and is critical.
func checkJWT(m *match) bool {
	parts := bytes.SplitN(m.secret, []byte("."), 3)
	if len(parts) != 3 {
		return false
	}
	var header struct {
		Alg string `json:"alg"`
	}
	var payload struct {
		Role string `json:"role"`
		Sub  string `json:"sub"`
		Name string `json:"name"`
		Iss  string `json:"iss"`
	}
	if !decodeJSONPart(parts[0], &header) || !decodeJSONPart(parts[1], &payload) {
		return false
	}
	switch {
	case header.Alg == "" || strings.EqualFold(header.Alg, "none"):
		return false
	case payload.Role == "anon":
		return false
	case payload.Sub == "1234567890" && payload.Name == "John Doe":
		return false
	case payload.Iss == "supabase-demo":
		return false // the local development keys the Supabase CLI prints and documents
	case localIssuer(payload.Iss):
		return false // signed by a test or documentation issuer: it opens nothing real
	case payload.Role == "service_role":
		m.title, m.severity = "Supabase service_role JWT (bypasses row level security)", SeverityCritical
	}
	return true
}

func decodeJSONPart(part []byte, v any) bool {
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(string(part), "="))
	if err != nil {
		return false
	}
	return json.Unmarshal(raw, v) == nil
}

// checkURLPassword leaves out local and documentation hosts, where credentials in a URL
// are the development default (postgres://postgres:postgres@localhost).
func checkURLPassword(m *match) bool {
	return !localHost(string(m.line[m.sub[4]:m.sub[5]]))
}

// localHost reports whether host is a local, compose-service or documentation host.
func localHost(host string) bool {
	host = strings.Trim(strings.ToLower(host), "[]")
	switch host {
	case "localhost", "127.0.0.1", "0.0.0.0", "::1", "host", "hostname", "example.com",
		"example.org", "example.net", "db", "database", "postgres", "mysql", "redis":
		return true
	}
	for _, suffix := range []string{".example", ".example.com", ".example.org", ".test", ".local", ".localhost", ".invalid"} {
		if strings.HasSuffix(host, suffix) {
			return true
		}
	}
	return false
}

// localIssuer reports whether a JWT's iss is a URL on a local or documentation host.
func localIssuer(iss string) bool {
	u, err := url.Parse(iss)
	return err == nil && u.Host != "" && localHost(u.Hostname())
}

// rejectKeyWords are words of a key whose value is not a secret: password_reset_url,
// token_type, secretName, passwordPolicy, publishable_key.
var rejectKeyWords = map[string]bool{
	"hash": true, "hashed": true, "digest": true, "url": true, "uri": true, "file": true,
	"path": true, "dir": true, "name": true, "type": true, "field": true, "label": true,
	"placeholder": true, "length": true, "len": true, "min": true, "max": true,
	"policy": true, "pattern": true, "regex": true, "header": true, "prefix": true,
	"env": true, "var": true, "id": true, "count": true, "expires": true, "expiry": true,
	"ttl": true, "endpoint": true, "template": true, "format": true, "input": true,
	"column": true, "param": true, "mode": true, "reset": true, "public": true,
	"publishable": true, "ref": true, "arn": true, "version": true, "enabled": true,
	"required": true, "strength": true, "hint": true, "prompt": true, "message": true,
	"msg": true, "error": true, "text": true, "key_name": true, "location": true,
	"manager": true, "store": true, "provider": true, "source": true, "class": true,
	"validator": true, "rule": true, "rules": true, "size": true, "limit": true,
	"timeout": true, "at": true, "by": true, "kind": true, "encoding": true,
}

// callExpr: a function or method call (copyUint8Array(vector.key), this.keys.get(id)):
// code that computes the value, not the value.
var callExpr = regexp.MustCompile(`^[A-Za-z_$][A-Za-z0-9_$]*(?:\.[A-Za-z_$][A-Za-z0-9_$]*)*\(`)

// identPath: a dotted reference to a variable or attribute, not a literal.
var identPath = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)+(?:\(\))?$`)

// checkGeneric keeps assignments of literal, secret-looking values to secret-named keys.
func checkGeneric(m *match) bool {
	key := m.line[m.sub[2]:m.sub[3]]
	for _, w := range keyWords(key) {
		if rejectKeyWords[w] {
			return false
		}
	}
	v := m.secret
	if bytes.ContainsAny(v, " \t") || identPath.Match(v) || callExpr.Match(v) {
		return false
	}
	// A JWT is judged by the jwt detector, which knows public and sample tokens.
	if bytes.HasPrefix(v, []byte("eyJ")) && bytes.Count(v, []byte(".")) == 2 {
		return false
	}
	if bytes.HasPrefix(v, []byte("http")) || v[0] == '/' || bytes.HasPrefix(v, []byte("./")) ||
		bytes.HasPrefix(v, []byte("~/")) || bytes.HasPrefix(v, []byte("pk_")) {
		return false
	}
	// Variable references of templates, shells and CI systems: env(X), ENV['X'],
	// process.env.X, os.Getenv("X").
	for _, ref := range []string{"env(", "env[", "env.", "getenv", "environ", "secrets.", "vault:", "ssm:"} {
		if containsFold(v, ref) {
			return false
		}
	}
	var lower, upper, digit, other bool
	for _, c := range v {
		switch {
		case 'a' <= c && c <= 'z':
			lower = true
		case 'A' <= c && c <= 'Z':
			upper = true
		case '0' <= c && c <= '9':
			digit = true
		default:
			other = true
		}
	}
	if envName.Match(v) {
		return false // DB_PASSWORD: the name of a variable that holds it
	}
	classes := 0
	for _, b := range []bool{lower, upper, digit, other} {
		if b {
			classes++
		}
	}
	// Words joined by dashes (from-setup) are not secrets; generated secrets have digits,
	// or are long and mix cases.
	return classes >= 2 && (digit || len(v) >= 16 && lower && upper && entropy(v) >= 3.5)
}

// envName is an environment variable's name.
var envName = regexp.MustCompile(`^[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+$`)

// keyWords splits an identifier into lower-case words at _ . - and case changes:
// "dbPasswordHash" -> db password hash.
func keyWords(key []byte) []string {
	var words []string
	start := 0
	flush := func(end int) {
		if end > start {
			words = append(words, strings.ToLower(string(key[start:end])))
		}
	}
	for i := 0; i < len(key); i++ {
		c := key[i]
		switch {
		case c == '_' || c == '.' || c == '-':
			flush(i)
			start = i + 1
		case 'A' <= c && c <= 'Z' && i > start && 'a' <= key[i-1] && key[i-1] <= 'z':
			flush(i)
			start = i
		}
	}
	flush(len(key))
	return words
}

// isK8sSecret reports whether a YAML document has a top-level "kind: Secret".
func isK8sSecret(doc []byte) bool {
	for off := 0; off < len(doc); {
		i := bytes.Index(doc[off:], []byte("kind:"))
		if i < 0 {
			return false
		}
		i += off
		off = i + 5
		if i > 0 && doc[i-1] != '\n' {
			continue
		}
		_, le := lineBounds(doc, i)
		v := bytes.Trim(bytes.TrimSpace(doc[i+5:le]), `"'`)
		if string(v) == "Secret" {
			return true
		}
	}
	return false
}

// k8sDataEntry is one "  key: base64" line of a Secret's data block.
var k8sDataEntry = regexp.MustCompile(`^([ \t]+)([A-Za-z0-9_.\-]+):[ \t]*["']?([A-Za-z0-9+/=]{8,})["']?[ \t]*\r?$`)

// k8sValue is a base64 value of a Kubernetes Secret, decoded.
type k8sValue struct {
	key        string
	start, end int // the base64 text in the file
	decoded    []byte
}

// k8sSecretValues returns the decoded values of the data blocks of the Kubernetes Secrets
// in a YAML file (several documents allowed).
func k8sSecretValues(b []byte) []k8sValue {
	var out []k8sValue
	for docStart := 0; docStart < len(b); {
		docEnd := len(b)
		if i := bytes.Index(b[docStart:], []byte("\n---")); i >= 0 {
			docEnd = docStart + i + 1
		}
		doc := b[docStart:docEnd]
		if isK8sSecret(doc) {
			out = append(out, dataValues(doc, docStart)...)
		}
		docStart = docEnd
		if docStart < len(b) {
			// Step over the separator line.
			if nl := bytes.IndexByte(b[docStart:], '\n'); nl >= 0 {
				docStart += nl + 1
			} else {
				break
			}
		}
	}
	return out
}

func dataValues(doc []byte, base int) []k8sValue {
	var out []k8sValue
	inData := false
	indent := ""
	for off := 0; off < len(doc); {
		end := bytes.IndexByte(doc[off:], '\n')
		if end < 0 {
			end = len(doc)
		} else {
			end += off
		}
		line := doc[off:end]
		switch {
		case bytes.HasPrefix(line, []byte("data:")):
			inData, indent = true, ""
		case inData && len(bytes.TrimSpace(line)) == 0:
		case inData:
			sub := k8sDataEntry.FindSubmatchIndex(line)
			if sub == nil || (indent != "" && string(line[sub[2]:sub[3]]) != indent) {
				inData = line[0] == ' ' || line[0] == '\t'
				break
			}
			indent = string(line[sub[2]:sub[3]])
			raw := line[sub[6]:sub[7]]
			dec, err := base64.StdEncoding.DecodeString(string(raw))
			if err != nil {
				dec, err = base64.RawStdEncoding.DecodeString(strings.TrimRight(string(raw), "="))
			}
			if err == nil && printable(dec) {
				out = append(out, k8sValue{
					key: string(line[sub[4]:sub[5]]), start: base + off + sub[6], end: base + off + sub[7], decoded: dec,
				})
			}
		}
		off = end + 1
	}
	return out
}

// printable: decoded bytes that are text, so a secret detector can read them.
func printable(b []byte) bool {
	for _, c := range b {
		if c < 0x20 && c != '\n' && c != '\r' && c != '\t' {
			return false
		}
	}
	return true
}
