package governance

import (
	"errors"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// A bad rules file is an error that names the file, the line, the column and the field
// (the rule by its id).
func TestRulesErrors(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		want       []string
	}{
		{"invalid regex", "rules:\n  - id: ORG-1\n    regex: '(unclosed'\n", []string{"rules.yaml:3:12: rules.ORG-1.regex: invalid regex: error parsing regexp: missing closing )"}},
		{"unknown field", "rules:\n  - id: ORG-1\n    regx: 'a'\n", []string{`rules.yaml:3:5: rules.ORG-1.regx: unknown field "regx" in rule (did you mean "regex"?)`}},
		{"bad severity", "rules:\n  - id: ORG-1\n    regex: a\n    severity: urgent\n", []string{`rules.yaml:4:15: rules.ORG-1.severity: unknown severity "urgent"`}},
		{"duplicate id", "rules:\n  - {id: ORG-1, regex: a}\n  - {id: ORG-1, regex: b}\n", []string{"rules.yaml:3:10: rules.ORG-1.id: duplicate id ORG-1"}},
		{"built-in id", "rules:\n  - {id: GOV-001, regex: a}\n", []string{"rules.yaml:2:10: rules.GOV-001.id: id GOV-001 is a built-in rule's"}},
		{"missing regex", "rules:\n  - id: ORG-1\n    severity: low\n", []string{"rules.yaml:2:5: rules.ORG-1.regex: missing: rule ORG-1 needs a regex"}},
		{"missing id", "rules:\n  - regex: a\n", []string{"rules.yaml:2:5: rules[0].id: missing: rule #1 needs an id"}},
		{"bad id", "rules:\n  - {id: 9lives, regex: a}\n", []string{`rules.yaml:2:10: rules[0].id: id "9lives": use letters`}},
		{"secret group out of range", "rules:\n  - {id: ORG-1, regex: 'a(b)', secret_group: 2}\n", []string{"rules.yaml:2:46: rules.ORG-1.secret_group: 2: the regex has 1 capture groups"}},
		{"bad glob", "rules:\n  - {id: ORG-1, regex: a, paths: ['src/[']}\n", []string{`rules.yaml:2:35: rules.ORG-1.paths[0]: glob "src/["`}},
		{"bad allowlist regex", "allowlist:\n  regexes: ['(']\n", []string{"rules.yaml:2:13: allowlist.regexes[0]: invalid regex"}},
		{"bad scope", "rules:\n  - {id: ORG-1, regex: a, scope: prose}\n", []string{`rules.yaml:2:34: rules.ORG-1.scope: "prose": want code`}},
		{"two problems", "rules:\n  - {id: ORG-1, regex: '('}\n  - {id: ORG-2, regex: '['}\n", []string{"rules.ORG-1.regex: invalid regex", "rules.ORG-2.regex: invalid regex"}},
		{"not yaml", "rules: [\n", []string{"rules.yaml:1: invalid YAML"}},
		{"bad table", "protected_tables: [a.b.c]\n", []string{`rules.yaml:1:20: protected_tables[0]: "a.b.c": want table or schema.table`}},
		{"a number for a list", "rules: 3\n", []string{"rules.yaml:1:8: rules: must be a list, got \"3\""}},
		{"bad nesting limit", "nesting_limit: 1\n", []string{"rules.yaml:1:16: nesting_limit: 1 is out of range: must be 2 or more"}},
		{"unknown top field", "rule: []\n", []string{`rules.yaml:1:1: rule: unknown field "rule" in rules file (did you mean "rules"?)`}},
		{"context severity of an unknown rule", "context_severity:\n  GOV-009: {test: low}\n", []string{"rules.yaml:2:3: context_severity.GOV-009: unknown rule GOV-009"}},
		{"unknown context", "context_severity:\n  GOV-001: {tests: low}\n", []string{`rules.yaml:2:13: context_severity.GOV-001.tests: unknown context "tests": want code, test, fixture, docs`}},
		{"bad context severity", "context_severity:\n  GOV-001:\n    docs: quiet\n", []string{`rules.yaml:3:11: context_severity.GOV-001.docs: unknown severity "quiet"`}},
		{"rule severity of an unknown rule", "rule_severity: {AI-003: low}\n", []string{"rules.yaml:1:17: rule_severity.AI-003: unknown rule AI-003"}},
		{"bad rule severity", "rule_severity: {AI-001: loud}\n", []string{`rules.yaml:1:25: rule_severity.AI-001: unknown severity "loud"`}},
		{"bad migration glob", "migration_paths: ['db/[']\n", []string{`rules.yaml:1:19: migration_paths[0]: glob "db/["`}},
		{"context severity not a mapping", "context_severity: [GOV-001]\n", []string{"rules.yaml:1:19: context_severity: must be a mapping"}},
		{"include_generated not a bool", "include_generated: sometimes\n", []string{"rules.yaml:1:20: include_generated:"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseRules("rules.yaml", []byte(tc.yaml))
			if !errors.Is(err, ErrBadRules) {
				t.Fatalf("got %v, want ErrBadRules", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
	if _, err := LoadRules(filepath.Join(t.TempDir(), "missing.yaml")); !errors.Is(err, ErrBadRules) || !strings.Contains(err.Error(), "missing.yaml") {
		t.Errorf("missing file: %v", err)
	}
}

// Custom rules: paths limit them, scope code leaves prose out, keywords prefilter,
// entropy and allowlists filter, secret rules are redacted; the pack settings apply.
func TestCustomRules(t *testing.T) {
	rs, err := ParseRules("rules.yaml", []byte(`
protected_tables: [billing.invoices]
service_role_paths: ["supabase/functions/**"]
nesting_limit: 3
allowlist:
  paths: ["fixtures/**"]
rules:
  - id: ORG-HOST
    description: Internal hostname in code
    regex: '\b[a-z0-9-]+\.corp\.internal\b'
    keywords: [corp.internal]
    paths: ["src/**"]
    allowlist: {stopwords: [staging]}
  - id: ORG-TOKEN
    description: Internal token
    severity: critical
    regex: 'tok_([A-Za-z0-9]{24})'
    secret_group: 1
    entropy: 3
    secret: true
    scope: all
`))
	if err != nil {
		t.Fatal(err)
	}
	e, err := New(Config{Rules: rs})
	if err != nil {
		t.Fatal(err)
	}
	tok := "tok_" + fake(alnum, 24)
	for _, tc := range []struct {
		file, content string
		want          []string // rule@line
	}{
		{"src/api.ts", "const host = 'db.corp.internal'\nconst other = 'staging.corp.internal'\n", []string{"ORG-HOST@1"}},
		{"lib/api.ts", "const host = 'db.corp.internal'\n", nil},
		{"docs/notes.md", "token " + tok + "\nhost db.corp.internal\n", []string{"ORG-TOKEN@1"}},
		{"src/low.ts", "const t = 'tok_aaaaaaaaaaaaaaaaaaaaaaaa'\n", nil},
		{"fixtures/data.ts", "const t = '" + tok + "'\n", nil},
		{"db/migrations/001.sql", "DROP TABLE users;\nDROP TABLE billing.invoices;\nDROP TABLE public.invoices;\n", []string{"GOV-003@2"}},
		{"supabase/functions/admin/index.ts", "createClient(url, Deno.env.get('SUPABASE_SERVICE_ROLE_KEY'))\n", nil},
		{"src/server/db.ts", "createClient(url, process.env.SUPABASE_SERVICE_ROLE_KEY)\n", []string{"GOV-002@1"}},
		{"src/deep.js", "if (a) {\n  if (b) {\n    if (c) {\n      x()\n    }\n  }\n}\n", []string{"AI-001@1"}},
	} {
		var got []string
		for _, f := range e.ScanFile(tc.file, []byte(tc.content)) {
			got = append(got, f.Rule+"@"+strconv.Itoa(f.Line))
			if strings.Contains(f.Excerpt, tok[4:]) {
				t.Errorf("%s: excerpt shows the token: %q", tc.file, f.Excerpt)
			}
		}
		if strings.Join(got, ",") != strings.Join(tc.want, ",") {
			t.Errorf("%s: got %v, want %v", tc.file, got, tc.want)
		}
	}
}

func TestPacks(t *testing.T) {
	if _, err := New(Config{Packs: []string{"secrets", "typos"}}); !errors.Is(err, ErrUnknownPack) {
		t.Errorf("unknown pack: %v", err)
	}
	e, err := New(Config{Packs: []string{PackMigrations}})
	if err != nil {
		t.Fatal(err)
	}
	fs := e.ScanFile("migrations/x.sql", []byte(withFakes("-- @@STRIPE_LIVE@@ TODO(ai)\nDROP TABLE users;\n")))
	if len(fs) != 1 || fs[0].Rule != ruleMigrations {
		t.Errorf("only migrations: got %+v", fs)
	}
	if ids := e.Rules(); len(ids) != 1 || ids[0].ID != ruleMigrations {
		t.Errorf("rules %+v", ids)
	}
}

func TestParseSeverity(t *testing.T) {
	for in, want := range map[string]Severity{"info": SeverityInfo, "LOW": SeverityLow, "note": SeverityLow,
		"medium": SeverityMedium, "warning": SeverityMedium, "high": SeverityHigh, "error": SeverityHigh, " critical ": SeverityCritical} {
		if got, err := ParseSeverity(in); err != nil || got != want {
			t.Errorf("ParseSeverity(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	if _, err := ParseSeverity("urgent"); !errors.Is(err, ErrBadSeverity) {
		t.Errorf("urgent: %v", err)
	}
}

func TestGlob(t *testing.T) {
	for _, tc := range []struct {
		glob, path string
		want       bool
	}{
		{"**/admin/**", "admin/x.ts", true},
		{"**/admin/**", "src/app/admin/users/page.tsx", true},
		{"**/admin/**", "src/app/admin-report/route.ts", false},
		{"*.ts", "src/a/b.ts", true},
		{"src/*.ts", "src/a/b.ts", false},
		{"src/**/*.ts", "src/a/b.ts", true},
		{"src/**", "src", false},
	} {
		if got := matchGlob(tc.glob, tc.path); got != tc.want {
			t.Errorf("matchGlob(%q, %q) = %v", tc.glob, tc.path, got)
		}
	}
}
