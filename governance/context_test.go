package governance

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func TestFileContext(t *testing.T) {
	for _, tc := range []struct {
		rel  string
		want Context
	}{
		{"src/app/pay.ts", ContextCode},
		{"internal/api/password_test.go", ContextTest},
		{"packages/auth-js/test/GoTrueClient.test.ts", ContextTest},
		{"src/__tests__/login.tsx", ContextTest},
		{"src/login.spec.js", ContextTest},
		{"app/tests/test_models.py", ContextTest},
		{"tests/conftest.py", ContextTest},
		{"src/test/java/AppTest.java", ContextTest},
		{"hack/test_asymmetric.env", ContextTest},
		{"examples/secrets/totp.test.js", ContextTest},
		{"internal/cmd/testdata/example.js", ContextFixture},
		{"tests/fixtures/key.pem", ContextFixture},
		{"src/__mocks__/stripe.ts", ContextFixture},
		{"docs/setup.md", ContextDocs},
		{"release notes/v0.46.0.md", ContextDocs},
		{"README.md", ContextDocs},
		{"examples/secrets/mock_server.go", ContextDocs},
		{"openapi.yaml", ContextDocs},
		{"src/contest.ts", ContextCode},    // a word ending in "test" is not a test
		{"src/latest/api.ts", ContextCode}, // nor a directory containing it
		{"src/attestation.go", ContextCode},
	} {
		if got := fileContext(tc.rel, classify(tc.rel)); got != tc.want {
			t.Errorf("fileContext(%q) = %s, want %s", tc.rel, got, tc.want)
		}
	}
}

// A secret in a test, a fixture or a docs example is still a finding, classed by its
// context in every output, and a rules file can give each context its own severity.
func TestContextSeverity(t *testing.T) {
	rs, err := ParseRules("rules.yaml", []byte(`
context_severity:
  GOV-001: {test: low, docs: info}
  ORG-TOKEN: {fixture: info}
rule_severity: {AI-001: medium}
rules:
  - {id: ORG-TOKEN, regex: 'tok_[a-z0-9]{24}', keywords: [tok_], severity: high}
`))
	if err != nil {
		t.Fatal(err)
	}
	e, err := New(Config{Rules: rs})
	if err != nil {
		t.Fatal(err)
	}
	key := withFakes(`const stripe = new Stripe("@@STRIPE_LIVE@@")` + "\n")
	nested := "if (a) {\n  if (b) {\n    if (c) {\n      if (d) { x() }\n    }\n  }\n}\n"
	tok := "const t = 'tok_" + strings.Repeat("a1b2", 6) + "'\n"
	for _, tc := range []struct {
		file, content string
		want          string // rule context severity
	}{
		{"src/pay.ts", key, "GOV-001 code critical"},
		{"src/pay.test.ts", key, "GOV-001 test low"},
		{"docs/payments.md", key, "GOV-001 docs info"},
		{"testdata/pay.ts", key, "GOV-001 fixture critical"},
		{"src/deep.ts", nested, "AI-001 code medium"},
		{"fixtures/t.ts", tok, "ORG-TOKEN fixture info"},
		{"src/t.ts", tok, "ORG-TOKEN code high"},
	} {
		fs := e.ScanFile(tc.file, []byte(tc.content))
		if len(fs) != 1 {
			t.Errorf("%s: %d findings, want 1: %+v", tc.file, len(fs), fs)
			continue
		}
		if got := fs[0].Rule + " " + string(fs[0].Context) + " " + fs[0].Severity.String(); got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.file, got, tc.want)
		}
	}

	// SARIF carries the context as a property and a tag, the JSON lines as a field.
	rep := &Report{Rules: e.Rules(), Findings: e.ScanFile("src/pay.test.ts", []byte(key))}
	var sarif, lines bytes.Buffer
	if err := WriteSARIF(&sarif, rep, SARIFOptions{}); err != nil {
		t.Fatal(err)
	}
	var log struct {
		Runs []struct {
			Results []struct {
				Properties struct {
					Context string   `json:"context"`
					Tags    []string `json:"tags"`
				} `json:"properties"`
			} `json:"results"`
		} `json:"runs"`
	}
	if err := json.Unmarshal(sarif.Bytes(), &log); err != nil {
		t.Fatal(err)
	}
	if p := log.Runs[0].Results[0].Properties; p.Context != "test" || len(p.Tags) != 1 || p.Tags[0] != "context:test" {
		t.Errorf("SARIF properties %+v, want context test and tag context:test", p)
	}
	if err := WriteJSONLines(&lines, rep.Findings); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(lines.String(), `"context":"test"`) {
		t.Errorf("JSON lines %s: no context", lines.String())
	}
}

func TestSkipByName(t *testing.T) {
	for rel, want := range map[string]SkipReason{
		"internal/js/modules/k6/browser/tests/static/react-dom.development.js": SkipBundle,
		"public/react.production.min.js":                                       SkipBundle,
		"static/app.bundle.js":                                                 SkipBundle,
		"vendor-libs/lodash.umd.js":                                            SkipBundle,
		"static/jquery.min.js":                                                 SkipMinified,
		"static/site.min.css":                                                  SkipMinified,
		"api/service.pb.go":                                                    SkipGenerated,
		"package-lock.json":                                                    SkipLockfile,
		"go.sum":                                                               SkipLockfile,
		"web/pnpm-lock.yaml":                                                   SkipLockfile,
		"src/app.js":                                                           "",
		"src/development.ts":                                                   "",
		"docs/bundle.md":                                                       "",
	} {
		if got := skipByName(rel); got != want {
			t.Errorf("skipByName(%q) = %q, want %q", rel, got, want)
		}
	}
}

func TestMinifiedContent(t *testing.T) {
	long := strings.Repeat("a=b(c,d);", 200) // 1,800 bytes on one line
	for _, tc := range []struct {
		name string
		b    string
		want bool
	}{
		{"one long line", long + "\n", true},
		{"a licence header, then the bundle", "/*! lib v1 | MIT */\n" + long + "\n", true},
		{"a small file", "a=b(c,d);\n", false},
		{"code of ordinary lines", strings.Repeat("  if (a) { b(c, d) }\n", 200), false},
		// k6's internal/cmd/testdata/example.js: a long string in a script of short lines.
		{"one long string among many short lines", strings.Repeat("  x = 1\n", 400) + "  s = \"" + long + "\"\n", false},
	} {
		if got := minifiedContent([]byte(tc.b)); got != tc.want {
			t.Errorf("%s: minified = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// A finding on a construct over several lines starts at its first line and ends at its
// last (SARIF startLine and endLine); a sluice:ignore above what it is about still
// suppresses it.
func TestFindingSpans(t *testing.T) {
	e, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, file, content string
		rule                string
		line, endLine       int
		suppressed          bool
	}{
		{"a PEM block", "certs/server.key", "-----BEGIN RSA PRIVATE KEY-----\n@@PEM_BODY@@\n-----END RSA PRIVATE KEY-----\n",
			ruleSecrets, 1, 10, false},
		{"a PEM block in a Go string", "internal/tls/key_test.go", "var key = `\n-----BEGIN EC PRIVATE KEY-----\n@@PEM_BODY@@\n-----END EC PRIVATE KEY-----`\n",
			ruleSecrets, 2, 11, false},
		{"an ALTER TABLE over three lines", "supabase/migrations/001.sql", "ALTER TABLE public.users\n  ADD COLUMN nick text,\n  DROP COLUMN email;\n",
			ruleMigrations, 1, 3, false},
		{"a sluice:ignore above the dropped column", "supabase/migrations/002.sql", "ALTER TABLE public.users\n  -- sluice:ignore GOV-003 the column moved to profiles in 001\n  DROP COLUMN email;\n",
			ruleMigrations, 1, 3, true},
		{"a createClient call over four lines", "src/lib/supabase.ts", "export const admin = createClient(\n  url,\n  process.env.SUPABASE_SERVICE_ROLE_KEY!,\n)\n",
			ruleSupabase, 1, 4, false},
		{"a nested construct", "src/lib/deep.js", "function f() {\n  if (a) {\n    if (b) {\n      if (c) {\n        if (d) { x() }\n      }\n    }\n  } else {\n    y()\n  }\n}\n",
			ruleNesting, 2, 10, false},
		{"a python construct", "app/deep.py", "def f():\n    for a in b:\n        if a:\n            while a.n:\n                if a.m:\n                    x()\n    return 1\n",
			ruleNesting, 2, 6, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := e.ScanFile(tc.file, []byte(withFakes(tc.content)))
			if len(fs) != 1 || fs[0].Rule != tc.rule {
				t.Fatalf("got %+v, want one %s finding", fs, tc.rule)
			}
			f := fs[0]
			if f.Line != tc.line || f.EndLine != tc.endLine {
				t.Errorf("lines %d-%d, want %d-%d", f.Line, f.EndLine, tc.line, tc.endLine)
			}
			if (f.Suppression != nil) != tc.suppressed {
				t.Errorf("suppression %+v, want suppressed %v", f.Suppression, tc.suppressed)
			}
			if name := leakedFake(f.Excerpt + f.Message); name != "" {
				t.Errorf("excerpt %q shows %s", f.Excerpt, name)
			}
		})
	}
}
