package governance

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"path"
	"regexp"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/sluice-ci/sluice/internal/strictyaml"
)

// RuleError is one problem of a rules file: "FILE:LINE:COL: FIELD: MSG", the error type
// of every Sluice file format. Every RuleError wraps ErrBadRules.
type RuleError = strictyaml.Error

// RuleSet is a rules file: custom rules and the settings of the built-in packs.
type RuleSet struct {
	File string
	// ProtectedTables are the tables GOV-003 guards, as "table" (any schema) or
	// "schema.table". Default: projects, users, payments, audit_log.
	ProtectedTables []string
	// ServiceRolePaths are the globs where GOV-002 allows a service-role client, besides
	// files marked server-only in their code (import "server-only", "use server").
	// Default: **/admin/**, **/server/**, admin.* (utils/supabase/admin.ts), *.server.*.
	ServiceRolePaths []string
	// NestingLimit is the depth of nested control flow AI-001 reports. Default 4.
	NestingLimit int
	// MigrationPaths are the globs of the SQL files GOV-003 reads. Default:
	// DefaultMigrationPaths (migration directories and migration tools' file names).
	MigrationPaths []string
	// IncludeGenerated scans generated files, vendored bundles, minified files and lock
	// files (see Config.IncludeGenerated).
	IncludeGenerated bool
	// RuleSeverity sets the severity of every finding of a rule: rule id -> severity, e.g.
	// AI-001 -> medium (whatever the depth).
	RuleSeverity map[string]Severity
	// ContextSeverity sets the severity of a rule's findings by the context of their file:
	// rule id -> context -> severity, e.g. GOV-001 -> test -> low. It wins over
	// RuleSeverity.
	ContextSeverity map[string]map[Context]Severity

	allow  allowlist
	custom []*rxRule
}

// Default pack settings.
var (
	DefaultProtectedTables  = []string{"projects", "users", "payments", "audit_log"}
	DefaultServiceRolePaths = []string{"**/admin/**", "**/server/**", "admin.*", "*.server.*"}
)

// DefaultMigrationPaths are where GOV-003 looks for migrations: directories named for them
// (supabase/migrations, db/migrate, db/migration, prisma/migrations, schema_migrations)
// and the file names of golang-migrate (*.up.sql) and Flyway (V1__init.sql). A seed file,
// a test's reset script or a one-off query elsewhere is not a migration.
var DefaultMigrationPaths = []string{
	"**/*migration*/**", "**/*Migration*/**", "**/migrate/**", "*.up.sql", "*.down.sql", "V[0-9]*__*.sql",
}

// DefaultNestingLimit is the nesting depth AI-001 reports: four control-flow blocks, one
// inside the other.
const DefaultNestingLimit = 4

// builtinIDs are the rule ids custom rules may not take.
var builtinIDs = []string{ruleSecrets, ruleSupabase, ruleMigrations, ruleNesting, ruleMarkers}

// LoadRules reads and validates a rules file.
func LoadRules(file string) (*RuleSet, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		d := &strictyaml.Decoder{File: file, Kind: ErrBadRules}
		d.Failf("cannot read the rules file: %v", err)
		return nil, d.Err()
	}
	return ParseRules(file, data)
}

var ruleIDPattern = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_.\-]{0,63}$`)

var rulesFormat = strictyaml.Format{Name: "rules file", Needs: "version, the packs' settings, allowlist and rules"}

// rulesDecoder reads a rules file on the strict decoder every Sluice file format shares.
type rulesDecoder struct{ *strictyaml.Decoder }

type field = strictyaml.Field

func set(name string, fn func(path string, v *yaml.Node)) field {
	return field{Name: name, Fn: func(path string, _, v *yaml.Node) { fn(path, v) }}
}

// ParseRules parses and validates a rules file's content; file names it in errors. Every
// problem is reported, each naming its line, column and field. An empty file is the
// defaults.
func ParseRules(file string, data []byte) (*RuleSet, error) {
	d := rulesDecoder{&strictyaml.Decoder{File: file, Kind: ErrBadRules}}
	rs := &RuleSet{File: file}
	if len(bytes.TrimSpace(data)) == 0 {
		return rs, nil
	}
	root := d.Root(data, rulesFormat)
	if root == nil {
		return nil, d.Err()
	}
	seen := map[string]bool{}
	var ruleKeys []ruleKey // keys of the mappings keyed by rule id
	d.Fields(root, "", "rules file", []field{
		set("version", func(path string, v *yaml.Node) {
			if n, ok := d.Int(path, v, 0, math.MaxInt32); ok && n != 0 && n != 1 {
				d.Errorf(strictyaml.Resolve(v), path, "version %d: this sluice reads version 1", n)
			}
		}),
		set("protected_tables", func(path string, v *yaml.Node) {
			nodes, paths := d.Items(path, v)
			for i, n := range nodes {
				t := d.Str(paths[i], n)
				if strings.Count(t, ".") > 1 || strings.TrimSpace(t) == "" {
					d.Errorf(n, paths[i], "%q: want table or schema.table", t)
					continue
				}
				rs.ProtectedTables = append(rs.ProtectedTables, t)
			}
		}),
		set("service_role_paths", func(path string, v *yaml.Node) { rs.ServiceRolePaths = d.globs(path, v) }),
		set("nesting_limit", func(path string, v *yaml.Node) {
			n, ok := d.Int(path, v, 0, 1000)
			if ok && n == 1 {
				d.Errorf(strictyaml.Resolve(v), path, "1 is out of range: must be 2 or more (0: the default, %d)", DefaultNestingLimit)
			}
			rs.NestingLimit = int(n)
		}),
		set("migration_paths", func(path string, v *yaml.Node) { rs.MigrationPaths = d.globs(path, v) }),
		set("include_generated", func(path string, v *yaml.Node) { rs.IncludeGenerated = d.Bool(path, v) }),
		set("rule_severity", func(path string, v *yaml.Node) {
			rs.RuleSeverity = make(map[string]Severity)
			d.Pairs(v, path, func(id string, key, sevNode *yaml.Node) {
				ruleKeys = append(ruleKeys, ruleKey{strictyaml.Join(path, id), id, key})
				if sev, ok := d.severity(strictyaml.Join(path, id), sevNode); ok {
					rs.RuleSeverity[id] = sev
				}
			})
		}),
		set("context_severity", func(path string, v *yaml.Node) {
			rs.ContextSeverity = d.contextSeverity(path, v, &ruleKeys)
		}),
		set("allowlist", func(path string, v *yaml.Node) { rs.allow = d.allowlist(path, v) }),
		set("rules", func(path string, v *yaml.Node) {
			d.List(path, v, func(ipath string, i int, item *yaml.Node) {
				// A rule is named by its id in messages, where it has a usable one.
				if id := strictyaml.ValueOf(item, "id"); id != nil && ruleIDPattern.MatchString(strictyaml.Resolve(id).Value) {
					ipath = strictyaml.Join(path, strictyaml.Resolve(id).Value)
				}
				if r := d.rule(ipath, i, item, seen); r != nil {
					rs.custom = append(rs.custom, r)
				}
			})
		}),
	})
	// Rule ids are checked once every custom rule is known, wherever the rules list is.
	for _, k := range ruleKeys {
		if !slices.Contains(builtinIDs, k.id) && !seen[k.id] {
			d.Errorf(k.key, k.path, "unknown rule %s: want a built-in rule (%s) or a custom rule's id",
				k.id, strings.Join(builtinIDs, ", "))
		}
	}
	if err := d.Err(); err != nil {
		return nil, err
	}
	return rs, nil
}

// ruleKey is a key of a mapping keyed by rule id, checked once the rules are known.
type ruleKey struct {
	path, id string
	key      *yaml.Node
}

// contextSeverity decodes context_severity: rule id -> {context: severity}; its keys are
// added to keys.
func (d rulesDecoder) contextSeverity(path string, v *yaml.Node, keys *[]ruleKey) map[string]map[Context]Severity {
	out := make(map[string]map[Context]Severity)
	d.Pairs(v, path, func(id string, key, byCtx *yaml.Node) {
		ipath := strictyaml.Join(path, id)
		*keys = append(*keys, ruleKey{ipath, id, key})
		m := make(map[Context]Severity)
		d.Pairs(byCtx, ipath, func(name string, key, sevNode *yaml.Node) {
			cpath := strictyaml.Join(ipath, name)
			if !slices.Contains(Contexts, Context(name)) {
				d.Errorf(key, cpath, "unknown context %q: want %s", name, joinContexts())
				return
			}
			if sev, ok := d.severity(cpath, sevNode); ok {
				m[Context(name)] = sev
			}
		})
		out[id] = m
	})
	return out
}

// severity decodes a severity name.
func (d rulesDecoder) severity(path string, v *yaml.Node) (Severity, bool) {
	sev, err := ParseSeverity(d.Str(path, v))
	if err != nil {
		d.Errorf(strictyaml.Resolve(v), path, "%v", err)
		return 0, false
	}
	return sev, true
}

// rule decodes rules[i], a custom rule; seen holds the ids of the rules before it.
func (d rulesDecoder) rule(path string, i int, n *yaml.Node, seen map[string]bool) *rxRule {
	r := &rxRule{severity: SeverityMedium, kinds: codeKinds, wholeFile: true}
	var (
		message              string
		regex                string
		regexNode, groupNode *yaml.Node
		scopePath, regexPath string
	)
	d.Fields(n, path, "rule", []field{
		set("id", func(path string, v *yaml.Node) {
			id := d.Str(path, v)
			switch {
			case !ruleIDPattern.MatchString(id):
				d.Errorf(strictyaml.Resolve(v), path, "id %q: use letters, digits, '-', '_' and '.', starting with a letter", id)
			case slices.Contains(builtinIDs, strings.ToUpper(id)):
				d.Errorf(strictyaml.Resolve(v), path, "id %s is a built-in rule's; pick another", id)
			case seen[id]:
				d.Errorf(strictyaml.Resolve(v), path, "duplicate id %s: every rule needs its own", id)
			}
			seen[id] = true
			r.rule = id
		}),
		set("description", func(path string, v *yaml.Node) { r.description = d.Str(path, v) }),
		set("message", func(path string, v *yaml.Node) { message = d.Str(path, v) }),
		set("severity", func(path string, v *yaml.Node) {
			sev, err := ParseSeverity(d.Str(path, v))
			if err != nil {
				d.Errorf(strictyaml.Resolve(v), path, "%v", err)
			}
			r.severity = sev
		}),
		set("paths", func(path string, v *yaml.Node) { r.paths = d.globs(path, v) }),
		set("regex", func(path string, v *yaml.Node) {
			regex, regexNode, regexPath = d.Str(path, v), strictyaml.Resolve(v), path
		}),
		set("secret_group", func(path string, v *yaml.Node) {
			g, _ := d.Int(path, v, 0, 99)
			r.valueFrom, groupNode = int(g), strictyaml.Resolve(v)
		}),
		set("keywords", func(path string, v *yaml.Node) { r.keywords = d.words(path, v, "keyword") }),
		set("entropy", func(path string, v *yaml.Node) {
			r.entropy, _ = d.Float(path, v, func(e float64) string {
				if e < 0 || e > 8 {
					return "want 0 to 8 bits per character"
				}
				return ""
			})
		}),
		set("secret", func(path string, v *yaml.Node) { r.secret = d.Bool(path, v) }),
		set("scope", func(path string, v *yaml.Node) {
			scopePath = path
			switch d.Str(path, v) {
			case "", "code":
			case "all":
				r.kinds = allKinds
			default:
				d.Errorf(strictyaml.Resolve(v), scopePath, "%q: want code (code, SQL and configs; the default) or all (every text file)", strictyaml.Resolve(v).Value)
			}
		}),
		set("allowlist", func(path string, v *yaml.Node) { r.allow = d.allowlist(path, v) }),
	})
	if r.rule == "" {
		d.Errorf(n, strictyaml.Join(path, "id"), "missing: rule #%d needs an id", i+1)
	}
	r.detector, r.title = r.rule, cmpOr(message, r.description, r.rule)
	if regexNode == nil {
		d.Errorf(n, strictyaml.Join(path, "regex"), "missing: rule %s needs a regex", cmpOr(r.rule, fmt.Sprintf("#%d", i+1)))
		return nil
	}
	re, err := regexp.Compile(regex)
	if err != nil {
		d.Errorf(regexNode, regexPath, "invalid regex: %v", err)
		return nil
	}
	r.re = re
	if groupNode != nil && r.valueFrom > re.NumSubexp() {
		d.Errorf(groupNode, strictyaml.Join(path, "secret_group"), "%d: the regex has %d capture groups", r.valueFrom, re.NumSubexp())
	}
	return r
}

// words decodes a list of non-empty ASCII words (keywords, stopwords: matched against bytes
// without decoding them).
func (d rulesDecoder) words(path string, v *yaml.Node, what string) []string {
	nodes, paths := d.Items(path, v)
	var out []string
	for i, n := range nodes {
		w := d.Str(paths[i], n)
		if w == "" || !isASCII(w) {
			d.Errorf(n, paths[i], "%s %q: %ss are non-empty ASCII", what, w, what)
			continue
		}
		out = append(out, w)
	}
	return out
}

// globs decodes a list of globs (see matchGlob).
func (d rulesDecoder) globs(path string, v *yaml.Node) []string {
	nodes, paths := d.Items(path, v)
	out := make([]string, 0, len(nodes))
	for i, n := range nodes {
		g := d.Str(paths[i], n)
		if err := checkGlob(g); err != nil {
			d.Errorf(n, paths[i], "%v", err)
			continue
		}
		out = append(out, g)
	}
	return out
}

// allowlist decodes an allowlist: paths (globs), regexes, stopwords.
func (d rulesDecoder) allowlist(path string, v *yaml.Node) allowlist {
	var a allowlist
	d.Fields(v, path, "allowlist", []field{
		set("paths", func(path string, v *yaml.Node) { a.paths = d.globs(path, v) }),
		set("regexes", func(path string, v *yaml.Node) {
			nodes, paths := d.Items(path, v)
			for i, n := range nodes {
				re, err := regexp.Compile(d.Str(paths[i], n))
				if err != nil {
					d.Errorf(n, paths[i], "invalid regex: %v", err)
					continue
				}
				a.regexes = append(a.regexes, re)
			}
		}),
		set("stopwords", func(path string, v *yaml.Node) {
			for _, w := range d.words(path, v, "stopword") {
				a.stopwords = append(a.stopwords, strings.ToLower(w))
			}
		}),
	})
	return a
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
