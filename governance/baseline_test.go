package governance

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// An old repository adopts the gate with a baseline: its findings stop failing, they stay
// accepted when code moves above them, and a new finding still fails.
func TestBaseline(t *testing.T) {
	root := fixtureTree(t)
	first := scanFixture(t, root, nil)
	var b bytes.Buffer
	if err := WriteBaseline(&b, first); err != nil {
		t.Fatal(err)
	}
	for k, v := range fakes {
		if strings.Contains(b.String(), v[:min(len(v), 16)]) {
			t.Errorf("the baseline holds the secret %s", k)
		}
	}
	file := filepath.Join(t.TempDir(), "baseline.json")
	if err := os.WriteFile(file, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	base, err := LoadBaseline(file)
	if err != nil {
		t.Fatal(err)
	}
	inline, _ := first.Suppressed()
	if base.Len() != len(first.Findings)-inline {
		t.Errorf("baseline has %d findings, want %d", base.Len(), len(first.Findings)-inline)
	}

	second := scanFixture(t, root, base)
	if active := second.Active(); len(active) != 0 {
		t.Errorf("active findings with the baseline: %v", active)
	}
	if _, n := second.Suppressed(); n != base.Len() {
		t.Errorf("%d findings suppressed by the baseline, want %d", n, base.Len())
	}

	// Move code, add a new secret.
	pay := filepath.Join(root, "src/app/checkout/pay.ts")
	data, err := os.ReadFile(pay)
	if err != nil {
		t.Fatal(err)
	}
	data = append([]byte("// a new header\n\n"), data...)
	data = append(data, []byte(withFakes("\nexport const slack = \"@@SLACK_BOT@@\"\n"))...)
	if err := os.WriteFile(pay, data, 0o644); err != nil {
		t.Fatal(err)
	}
	third := scanFixture(t, root, base)
	active := third.Active()
	if len(active) != 1 || active[0].Detector != "slack-token" || active[0].Line != 13 {
		t.Errorf("active after the change: %+v, want only the new slack-token at line 13", active)
	}
}

func TestBaselineErrors(t *testing.T) {
	for _, tc := range []struct{ name, content string }{
		{"not json", "findings: []"},
		{"wrong version", `{"version": 2, "findings": []}`},
		{"unknown field", `{"version": 1, "findings": [], "extra": 1}`},
		{"no fingerprint", `{"version": 1, "findings": [{"rule": "GOV-001"}]}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ReadBaseline("b.json", strings.NewReader(tc.content))
			if !errors.Is(err, ErrBadBaseline) || !strings.Contains(err.Error(), "b.json") {
				t.Errorf("got %v, want ErrBadBaseline naming b.json", err)
			}
		})
	}
}

// Inline suppressions: on the line or the line above, by rule id or detector, with a
// reason; without a reason the finding stays and says why.
func TestInlineSuppression(t *testing.T) {
	e, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, content string
		suppressed    bool
		why           string
	}{
		{"same line", "const k = \"@@STRIPE_LIVE@@\" // sluice:ignore GOV-001 revoked test fixture\n", true, "revoked test fixture"},
		{"line above", "// sluice:ignore GOV-001 revoked test fixture\nconst k = \"@@STRIPE_LIVE@@\"\n", true, "revoked test fixture"},
		{"by detector, in a list", "/* sluice:ignore AI-002,stripe-secret-key rotated in SEC-1 */ const k = \"@@STRIPE_LIVE@@\"\n", true, "rotated in SEC-1"},
		{"another rule", "const k = \"@@STRIPE_LIVE@@\" // sluice:ignore GOV-003 not this one\n", false, ""},
		{"two lines above", "// sluice:ignore GOV-001 too far\n\nconst k = \"@@STRIPE_LIVE@@\"\n", false, ""},
		{"no reason", "const k = \"@@STRIPE_LIVE@@\" // sluice:ignore GOV-001\n", false, "without a reason"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := e.ScanFile("src/k.ts", []byte(withFakes(tc.content)))
			if len(fs) != 1 {
				t.Fatalf("findings %+v, want 1", fs)
			}
			f := fs[0]
			switch {
			case tc.suppressed && (f.Suppression == nil || f.Suppression.Kind != SuppressedInSource || f.Suppression.Justification != tc.why):
				t.Errorf("suppression %+v, want inSource %q", f.Suppression, tc.why)
			case !tc.suppressed && f.Suppression != nil:
				t.Errorf("suppressed by %+v", f.Suppression)
			case !tc.suppressed && !strings.Contains(f.Message, tc.why):
				t.Errorf("message %q, want it to contain %q", f.Message, tc.why)
			}
		})
	}
}
