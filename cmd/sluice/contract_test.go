package main

import (
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	exampleapp "github.com/sluice-ci/sluice/examples/app"
	"github.com/sluice-ci/sluice/loadtest"
)

func TestContractCheck(t *testing.T) {
	srv := httptest.NewServer(exampleapp.NewHandler("v1"))
	defer srv.Close()
	junit := filepath.Join(t.TempDir(), "junit.xml")
	contracts := "../../examples/app/contracts/"
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantOut  string // in stdout, or stderr for exit 2
	}{
		{"passes", []string{contracts + "payments.yaml", contracts + "health.yaml", "--target", srv.URL, "--junit", junit},
			exitOK, "contracts: 3 passed, 0 failed"},
		{"refused", []string{contracts + "health.yaml", "--target", freeHTTP(t)}, exitFailed, "connection refused"},
		{"no target", []string{contracts + "health.yaml"}, exitUsage, "--target is required"},
		{"no files", []string{"--target", srv.URL}, exitUsage, "needs at least one contract FILE"},
		{"no match", []string{contracts + "nope-*.yaml", "--target", srv.URL}, exitUsage, "matches no file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := cli(t, append([]string{"contract", "check"}, tt.args...)...)
			if code != tt.wantCode || !strings.Contains(stdout+stderr, tt.wantOut) {
				t.Errorf("exit %d, want %d with %q\nstdout:\n%s\nstderr:\n%s", code, tt.wantCode, tt.wantOut, stdout, stderr)
			}
		})
	}
	if b, err := os.ReadFile(junit); err != nil || !strings.Contains(string(b), `failures="0"`) {
		t.Errorf("--junit file: %v\n%s", err, b)
	}
}

func TestLoadRun(t *testing.T) {
	if _, err := loadtest.FindK6(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("sluice load run needs k6: %v (run `make bin/k6`)", err)
		}
		t.Skipf("SKIPPING sluice load run: %v (run `make bin/k6`)", err)
	}
	srv := httptest.NewServer(exampleapp.NewHandler("v1"))
	defer srv.Close()
	script := "../../examples/app/loadtest/api.js"
	summary := filepath.Join(t.TempDir(), "summary.json")
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantOut  string
	}{
		{"crosses a threshold", []string{script, "--target", srv.URL, "--vus", "2", "--duration", "2s",
			"--threshold", "http_req_duration=p(95)<0.001", "--summary", summary}, exitFailed, "FAIL http_req_duration p(95)<0.001"},
		{"refused", []string{script, "--target", freeHTTP(t)}, exitFailed, "target unreachable"},
		{"bad stage", []string{script, "--stage", "3s"}, exitUsage, "want DURATION:VUS"},
		{"no script", []string{"nope.js"}, exitUsage, "script nope.js"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := cli(t, append([]string{"load", "run"}, tt.args...)...)
			if code != tt.wantCode || !strings.Contains(stdout+stderr, tt.wantOut) {
				t.Errorf("exit %d, want %d with %q\nstdout:\n%s\nstderr:\n%s", code, tt.wantCode, tt.wantOut, stdout, stderr)
			}
		})
	}
	if b, err := os.ReadFile(summary); err != nil || !strings.Contains(string(b), `"metrics"`) {
		t.Errorf("--summary file: %v", err)
	}
}

// freeHTTP is an http:// URL on which nothing listens.
func freeHTTP(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(nil)
	u := srv.URL
	srv.Close()
	return u
}
