package governance

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// ErrBadRules: a rules file that does not read, parse or validate. The error is a
// *RuleError (or errors joining several) naming the file, the line and the rule.
var ErrBadRules = errors.New("bad governance rules")

// RuleError is one problem of a rules file.
type RuleError struct {
	File string
	Line int
	Rule string // the rule's id, when the problem is in a rule
	Msg  string
}

func (e *RuleError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	b.WriteString(": ")
	if e.Rule != "" {
		fmt.Fprintf(&b, "rule %s: ", e.Rule)
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Is makes errors.Is(err, ErrBadRules) hold for every RuleError.
func (e *RuleError) Is(target error) bool { return target == ErrBadRules }

// RuleSet is a rules file: custom rules and the settings of the built-in packs.
type RuleSet struct {
	File string
	// ProtectedTables are the tables GOV-003 guards, as "table" (any schema) or
	// "schema.table". Default: projects, users, payments, audit_log.
	ProtectedTables []string
	// ServiceRolePaths are the globs where GOV-002 allows a service-role client.
	// Default: **/admin/**, **/server/**.
	ServiceRolePaths []string
	// NestingLimit is the depth of nested control flow AI-001 reports. Default 4.
	NestingLimit int

	allow  allowlist
	custom []*rxRule
}

// Default pack settings.
var (
	DefaultProtectedTables  = []string{"projects", "users", "payments", "audit_log"}
	DefaultServiceRolePaths = []string{"**/admin/**", "**/server/**"}
)

// DefaultNestingLimit is the nesting depth AI-001 reports: four control-flow blocks, one
// inside the other.
const DefaultNestingLimit = 4

// builtinIDs are the rule ids custom rules may not take.
var builtinIDs = []string{ruleSecrets, ruleSupabase, ruleMigrations, ruleNesting, ruleMarkers}

// LoadRules reads and validates a rules file.
func LoadRules(file string) (*RuleSet, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, &RuleError{File: file, Msg: fmt.Sprintf("cannot read the rules file: %v", err)}
	}
	return ParseRules(file, data)
}

// The rules file schema; strict: an unknown field is an error.
type rulesYAML struct {
	Version          int          `yaml:"version"`
	ProtectedTables  []string     `yaml:"protected_tables"`
	ServiceRolePaths []string     `yaml:"service_role_paths"`
	NestingLimit     int          `yaml:"nesting_limit"`
	Allowlist        allowYAML    `yaml:"allowlist"`
	Rules            []customYAML `yaml:"rules"`
}

type allowYAML struct {
	Paths     []string `yaml:"paths"`
	Regexes   []string `yaml:"regexes"`
	Stopwords []string `yaml:"stopwords"`
}

type customYAML struct {
	ID          string    `yaml:"id"`
	Description string    `yaml:"description"`
	Message     string    `yaml:"message"`
	Severity    string    `yaml:"severity"`
	Paths       []string  `yaml:"paths"`
	Regex       string    `yaml:"regex"`
	SecretGroup int       `yaml:"secret_group"`
	Keywords    []string  `yaml:"keywords"`
	Entropy     float64   `yaml:"entropy"`
	Secret      bool      `yaml:"secret"`
	Scope       string    `yaml:"scope"`
	Allowlist   allowYAML `yaml:"allowlist"`
}

var ruleIDPattern = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_.\-]{0,63}$`)

// ParseRules parses and validates a rules file's content; file names it in errors.
func ParseRules(file string, data []byte) (*RuleSet, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, yamlError(file, err)
	}
	var raw rulesYAML
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&raw); err != nil && !errors.Is(err, io.EOF) {
		return nil, yamlError(file, err)
	}
	lines := ruleLines(&doc)

	rs := &RuleSet{
		File:             file,
		ProtectedTables:  raw.ProtectedTables,
		ServiceRolePaths: raw.ServiceRolePaths,
		NestingLimit:     raw.NestingLimit,
	}
	var errs []error
	fail := func(line int, rule, format string, args ...any) {
		errs = append(errs, &RuleError{File: file, Line: line, Rule: rule, Msg: fmt.Sprintf(format, args...)})
	}
	if raw.Version != 0 && raw.Version != 1 {
		fail(lines.key("version"), "", "version %d: this sluice reads version 1", raw.Version)
	}
	if raw.NestingLimit < 0 || raw.NestingLimit == 1 {
		fail(lines.key("nesting_limit"), "", "nesting_limit %d: must be 2 or more", raw.NestingLimit)
	}
	for _, g := range raw.ServiceRolePaths {
		if err := checkGlob(g); err != nil {
			fail(lines.key("service_role_paths"), "", "service_role_paths: %v", err)
		}
	}
	for _, t := range raw.ProtectedTables {
		if strings.Count(t, ".") > 1 || strings.TrimSpace(t) == "" {
			fail(lines.key("protected_tables"), "", "protected_tables: %q: want table or schema.table", t)
		}
	}
	var err error
	if rs.allow, err = compileAllow(raw.Allowlist); err != nil {
		fail(lines.key("allowlist"), "", "allowlist: %v", err)
	}

	seen := make(map[string]bool)
	for i, c := range raw.Rules {
		at := lines.rule(i, "")
		id := c.ID
		switch {
		case id == "":
			fail(at, fmt.Sprintf("#%d", i+1), "missing id")
			continue
		case !ruleIDPattern.MatchString(id):
			fail(lines.rule(i, "id"), id, "id %q: use letters, digits, '-', '_' and '.', starting with a letter", id)
		case slices.Contains(builtinIDs, strings.ToUpper(id)):
			fail(lines.rule(i, "id"), id, "id %s is a built-in rule's; pick another", id)
		case seen[id]:
			fail(lines.rule(i, "id"), id, "duplicate id")
		}
		seen[id] = true
		r := &rxRule{
			rule: id, detector: id, title: cmpOr(c.Message, c.Description, id),
			description: c.Description, keywords: c.Keywords, entropy: c.Entropy,
			secret: c.Secret, paths: c.Paths, valueFrom: c.SecretGroup, wholeFile: true,
			severity: SeverityMedium, kinds: codeKinds,
		}
		if c.Severity != "" {
			if r.severity, err = ParseSeverity(c.Severity); err != nil {
				fail(lines.rule(i, "severity"), id, "%v", err)
			}
		}
		switch c.Scope {
		case "", "code":
		case "all":
			r.kinds = allKinds
		default:
			fail(lines.rule(i, "scope"), id, "scope %q: want code (code, SQL and configs; the default) or all (every text file)", c.Scope)
		}
		if c.Regex == "" {
			fail(at, id, "missing regex")
		} else if r.re, err = regexp.Compile(c.Regex); err != nil {
			fail(lines.rule(i, "regex"), id, "invalid regex: %v", err)
		} else if c.SecretGroup < 0 || c.SecretGroup > r.re.NumSubexp() {
			fail(lines.rule(i, "secret_group"), id, "secret_group %d: the regex has %d capture groups", c.SecretGroup, r.re.NumSubexp())
		}
		if c.Entropy < 0 || c.Entropy > 8 {
			fail(lines.rule(i, "entropy"), id, "entropy %g: want 0 to 8 bits per character", c.Entropy)
		}
		for _, k := range c.Keywords {
			if k == "" || !isASCII(k) {
				fail(lines.rule(i, "keywords"), id, "keyword %q: keywords are non-empty ASCII", k)
			}
		}
		for _, g := range c.Paths {
			if err := checkGlob(g); err != nil {
				fail(lines.rule(i, "paths"), id, "paths: %v", err)
			}
		}
		if r.allow, err = compileAllow(c.Allowlist); err != nil {
			fail(lines.rule(i, "allowlist"), id, "allowlist: %v", err)
		}
		rs.custom = append(rs.custom, r)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return rs, nil
}

// yamlError turns a yaml.v3 error into RuleErrors with lines, without the Go type names
// that yaml.v3 puts in its messages.
func yamlError(file string, err error) error {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		var errs []error
		for _, e := range te.Errors {
			line, msg := cutLine(e)
			msg, _, _ = strings.Cut(msg, " in type ")
			errs = append(errs, &RuleError{File: file, Line: line, Msg: msg})
		}
		return errors.Join(errs...)
	}
	line, msg := cutLine(strings.TrimPrefix(err.Error(), "yaml: "))
	return &RuleError{File: file, Line: line, Msg: msg}
}

// cutLine splits yaml.v3's "line N: message".
func cutLine(e string) (int, string) {
	rest, ok := strings.CutPrefix(e, "line ")
	if !ok {
		return 0, e
	}
	n, msg, ok := strings.Cut(rest, ": ")
	line, err := strconv.Atoi(n)
	if !ok || err != nil {
		return 0, e
	}
	return line, msg
}

// nodeLines finds the lines of the parts of a rules file, for errors.
type nodeLines struct{ root *yaml.Node }

func ruleLines(doc *yaml.Node) nodeLines {
	if doc.Kind == yaml.DocumentNode && len(doc.Content) > 0 {
		return nodeLines{root: doc.Content[0]}
	}
	return nodeLines{}
}

func mapValue(m *yaml.Node, key string) (k, v *yaml.Node) {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil, nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i], m.Content[i+1]
		}
	}
	return nil, nil
}

func (l nodeLines) key(key string) int {
	if k, _ := mapValue(l.root, key); k != nil {
		return k.Line
	}
	return 0
}

// rule is the line of rules[i], or of its field when field is set and present.
func (l nodeLines) rule(i int, field string) int {
	_, rules := mapValue(l.root, "rules")
	if rules == nil || rules.Kind != yaml.SequenceNode || i >= len(rules.Content) {
		return 0
	}
	r := rules.Content[i]
	if field != "" {
		if _, v := mapValue(r, field); v != nil {
			return v.Line
		}
	}
	return r.Line
}

func cmpOr(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// allowlist exempts paths, and values by regex or stopword.
type allowlist struct {
	paths     []string
	regexes   []*regexp.Regexp
	stopwords []string // lower case
}

func compileAllow(a allowYAML) (allowlist, error) {
	out := allowlist{paths: a.Paths}
	for _, g := range a.Paths {
		if err := checkGlob(g); err != nil {
			return out, err
		}
	}
	for _, s := range a.Regexes {
		re, err := regexp.Compile(s)
		if err != nil {
			return out, fmt.Errorf("regex %q: %w", s, err)
		}
		out.regexes = append(out.regexes, re)
	}
	for _, w := range a.Stopwords {
		if w == "" || !isASCII(w) {
			return out, fmt.Errorf("stopword %q: stopwords are non-empty ASCII", w)
		}
		out.stopwords = append(out.stopwords, strings.ToLower(w))
	}
	return out, nil
}

func (a *allowlist) allowsPath(rel string) bool {
	for _, g := range a.paths {
		if matchGlob(g, rel) {
			return true
		}
	}
	return false
}

func (a *allowlist) allowsValue(v []byte) bool {
	for _, w := range a.stopwords {
		if containsFold(v, w) {
			return true
		}
	}
	for _, re := range a.regexes {
		if re.Match(v) {
			return true
		}
	}
	return false
}

// checkGlob validates a glob: path.Match syntax in each segment, ** as a whole segment.
func checkGlob(g string) error {
	if g == "" {
		return fmt.Errorf("empty glob")
	}
	for _, seg := range strings.Split(strings.Trim(g, "/"), "/") {
		if seg == "**" {
			continue
		}
		if _, err := path.Match(seg, ""); err != nil {
			return fmt.Errorf("glob %q: %w", g, err)
		}
	}
	return nil
}

// matchGlob matches a slash-separated relative path against a glob: * and ? within a
// segment, ** for any number of segments. A glob without a slash matches the base name
// anywhere in the tree, as in .gitignore ("*.ts").
func matchGlob(g, rel string) bool {
	g = strings.Trim(g, "/")
	if !strings.Contains(g, "/") {
		ok, _ := path.Match(g, path.Base(rel))
		return ok
	}
	return matchSegs(strings.Split(g, "/"), strings.Split(rel, "/"))
}

func matchSegs(g, p []string) bool {
	for len(g) > 0 {
		if g[0] == "**" {
			return matchAnyDepth(g[1:], p)
		}
		if len(p) == 0 {
			return false
		}
		if ok, _ := path.Match(g[0], p[0]); !ok {
			return false
		}
		g, p = g[1:], p[1:]
	}
	return len(p) == 0
}

// matchAnyDepth matches the glob segments after a ** at any depth of p.
func matchAnyDepth(rest, p []string) bool {
	if len(rest) == 0 {
		return len(p) > 0 // a trailing ** matches what is inside, not the folder
	}
	for i := 0; i <= len(p); i++ {
		if matchSegs(rest, p[i:]) {
			return true
		}
	}
	return false
}
