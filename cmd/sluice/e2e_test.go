package main

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-ci/sluice/e2e"
)

// TestE2ERun runs the engine's fixture journeys through the CLI on a real Chromium.
func TestE2ERun(t *testing.T) {
	if _, err := e2e.FindChromium(""); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("no browser: %v", err)
		}
		t.Skipf("no browser: %v", err)
	}
	site := httptest.NewServer(http.FileServer(http.Dir("../../e2e/testdata/site")))
	t.Cleanup(site.Close)
	journeys := "../../e2e/testdata/journeys/"
	out := t.TempDir()

	code, stdout, stderr := cli(t, "e2e", "run", journeys+"visit.yaml", "--base-url", site.URL, "--out", "")
	if code != exitOK || !strings.Contains(stdout, "PASS fresh profile") || !strings.Contains(stdout, "1 journeys: 1 passed, 0 failed") {
		t.Errorf("passing journey: exit %d\n%s%s", code, stdout, stderr)
	}

	code, stdout, stderr = cli(t, "e2e", "run", journeys+"js-e*.yaml", journeys+"visit.yaml", "--base-url", site.URL, "--out", out)
	if code != exitFailed || !strings.Contains(stdout, "FAIL JS error on load") || !strings.Contains(stdout, "js-error.yaml:5) expect_no_console_errors") {
		t.Errorf("failing journey: exit %d\n%s%s", code, stdout, stderr)
	}
	for _, f := range []string{"junit.xml", "screenshots/js-error/03-expect_no_console_errors-failed.png"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Errorf("result file: %v", err)
		}
	}
}

func TestE2ERunBadInput(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("steps:\n  - goto: /\n  - clik: '#a'\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		code int
		want string // in stderr
	}{
		{"unknown step", []string{bad}, exitUsage, bad + `:3:5: steps[1].clik: unknown step "clik" (did you mean "click"?)`},
		{"no journeys", nil, exitUsage, "needs at least one journey file"},
		{"empty glob", []string{filepath.Join(t.TempDir(), "*.yaml")}, exitUsage, "matched no file"},
		{"no browser", []string{"../../e2e/testdata/journeys/visit.yaml", "--chromium", "/nonexistent/chromium"}, exitFailed, "no Chromium browser at /nonexistent/chromium"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := cli(t, append([]string{"e2e", "run"}, tt.args...)...)
			if code != tt.code || !strings.Contains(stderr, tt.want) {
				t.Errorf("exit %d, want %d; stderr %q does not contain %q", code, tt.code, stderr, tt.want)
			}
		})
	}
}
