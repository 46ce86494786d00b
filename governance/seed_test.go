package governance

import (
	"testing"
)

// The seed article's AI-code gate (shared/seeds/000_42ee25f5c081ea9f.txt) fails a pull
// request on "overly complex nested conditions (AI loves these)" with
// `grep -r "if.*if.*if.*if" src/ai-generated/`: four ifs, one inside the other. AI-001
// reports that pattern however it is written, as one finding per construct. At the default
// severities it is info: reported (SARIF note), not failing a gate at the default fail_on,
// since healthy code reaches four levels now and then. The seed's strictness is one line
// of a rules file: rule_severity: {AI-001: medium}.
func TestSeedFourNestedIfs(t *testing.T) {
	seeds := []struct{ file, content string }{
		{"src/ai-generated/user_service.py", "def register_user(self, data):\n    if data:\n        if data.get('email'):\n            if self.valid(data):\n                if not self.exists(data['email']):\n                    return self.create(data)\n    return None\n"},
		{"src/ai-generated/userService.ts", "export function registerUser(data: User) {\n  if (data) {\n    if (data.email) {\n      if (valid(data)) {\n        if (!exists(data.email)) {\n          return create(data)\n        }\n      }\n    }\n  }\n}\n"},
		// The one line the seed's grep matches.
		{"src/ai-generated/guard.js", "function f(a, b, c, d) {\n  if (a) if (b) if (c) if (d) return go()\n}\n"},
	}
	strict, err := ParseRules("governance.yaml", []byte("rule_severity: {AI-001: medium}\n"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		rules *RuleSet
		fails bool // at DefaultFailOn
	}{
		{"defaults", nil, false},
		{"the seed's strictness", strict, true},
	} {
		e, err := New(Config{Rules: tc.rules})
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range seeds {
			rep := &Report{Findings: e.ScanFile(s.file, []byte(s.content))}
			if len(rep.Findings) != 1 || rep.Findings[0].Rule != ruleNesting || rep.Findings[0].Line != 2 {
				t.Errorf("%s, %s: got %+v, want one AI-001 finding at line 2", tc.name, s.file, rep.Findings)
				continue
			}
			if fails := len(rep.Failing(DefaultFailOn)) > 0; fails != tc.fails {
				t.Errorf("%s, %s: fails the default gate: %v, want %v (severity %s)", tc.name, s.file, fails, tc.fails, rep.Findings[0].Severity)
			}
		}
	}
}

// Severity grows with the depth past the limit: what healthy code reaches now and then is
// info, code two or three levels deeper fails the default gate.
func TestNestingSeverityByDepth(t *testing.T) {
	e, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	for depth, want := range map[int]Severity{4: SeverityInfo, 5: SeverityInfo, 6: SeverityLow, 7: SeverityMedium, 9: SeverityMedium} {
		src := "function f() {\n"
		for i := range depth {
			src += "if (a" + string(rune('0'+i)) + ") {\n"
		}
		for range depth {
			src += "}\n"
		}
		src += "}\n"
		fs := e.ScanFile("src/deep.js", []byte(src))
		if len(fs) != 1 || fs[0].Severity != want {
			t.Errorf("depth %d: got %+v, want one finding of severity %s", depth, fs, want)
		}
	}
	lim, err := ParseRules("r.yaml", []byte("nesting_limit: 3\n"))
	if err != nil {
		t.Fatal(err)
	}
	e, err = New(Config{Rules: lim})
	if err != nil {
		t.Fatal(err)
	}
	if fs := e.ScanFile("src/three.js", []byte("if (a) {\n  if (b) {\n    if (c) { x() }\n  }\n}\n")); len(fs) != 1 || fs[0].Severity != SeverityInfo {
		t.Errorf("nesting_limit 3, depth 3: got %+v, want one info finding", fs)
	}
}
