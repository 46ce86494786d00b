package loadtest_test

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-ci/sluice/examples/app"
	"github.com/sluice-ci/sluice/loadtest"
)

// k6 returns the k6 binary the tests run. Under CI a missing k6 fails the tier: CI must
// never pass without having run the load tests.
func k6(t *testing.T) string {
	t.Helper()
	p, err := loadtest.FindK6()
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("the load test tier needs k6 %s: %v (run `make bin/k6`)", loadtest.K6Version, err)
		}
		t.Skipf("SKIPPING the load test tier: %v (run `make bin/k6`)", err)
	}
	return p
}

func TestK6Version(t *testing.T) {
	out, err := exec.CommandContext(t.Context(), k6(t), "version").Output()
	if err != nil {
		t.Fatalf("k6 version: %v", err)
	}
	if !strings.HasPrefix(string(out), "k6 "+loadtest.K6Version+" ") {
		t.Errorf("k6 version: %q, want %s (rebuild with `make bin/k6`)", out, loadtest.K6Version)
	}
}

func TestFindK6FromEnv(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "k6")
	t.Setenv(loadtest.K6Env, missing)
	_, err := loadtest.FindK6()
	if !errors.Is(err, loadtest.ErrK6NotFound) || !strings.Contains(err.Error(), missing) {
		t.Errorf("FindK6 with $%s=%s: %v, want ErrK6NotFound naming the path", loadtest.K6Env, missing, err)
	}
	t.Setenv(loadtest.K6Env, "")
	t.Setenv("PATH", t.TempDir())
	t.Chdir(t.TempDir())
	if _, err := loadtest.FindK6(); err == nil {
		// The test binary's own directory could hold a k6; it never does in go test's
		// temporary build directory.
		t.Errorf("FindK6 outside the repository, with an empty PATH: no error")
	} else if !strings.Contains(err.Error(), "make bin/k6") {
		t.Errorf("FindK6 error does not say how to get k6: %v", err)
	}
}

func TestParseSummary(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "summary.json"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := loadtest.ParseSummary(data)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"http_req_duration p(95)<0.001 (p(95)=0.1414ms)",
	}
	var got []string
	for _, th := range s.Crossed() {
		got = append(got, th.String())
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("crossed thresholds:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if len(s.Thresholds) != 3 {
		t.Errorf("%d thresholds, want 3: %v", len(s.Thresholds), s.Thresholds)
	}
	if s.Requests == 0 || s.RequestRate == 0 || s.DurationP95 == 0 || s.DurationP99 == 0 || s.Iterations == 0 || s.ChecksPassed == 0 {
		t.Errorf("headline metrics missing: %+v", s)
	}
	if _, err := loadtest.ParseSummary([]byte(`{"metrics": {}, "state": {}}`)); err != nil {
		t.Errorf("empty metrics: %v", err)
	}
	if _, err := loadtest.ParseSummary([]byte(`{"ok": true}`)); err == nil {
		t.Error("a document without metrics parsed")
	}
}

// lockedBuffer collects k6's output, which arrives from two pipes at once.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func target(t *testing.T, o app.Options) string {
	t.Helper()
	srv := httptest.NewServer(app.New(o))
	t.Cleanup(srv.Close)
	return srv.URL
}

// refusedTarget is a loopback URL nothing listens on.
func refusedTarget(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return "http://" + addr
}

func TestRun(t *testing.T) {
	bin := k6(t)
	testdata, err := filepath.Abs("testdata")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		app     app.Options
		target  string // overrides the app's URL
		script  string
		thresh  map[string][]string
		wantErr error
		// wantMsg are substrings of the error.
		wantMsg []string
	}{
		{name: "passes", script: "healthz.js",
			thresh: map[string][]string{"http_req_duration": {"p(95)<5000"}, "http_req_failed": {"rate<0.5"}}},
		{name: "latency crosses http_req_duration", app: app.Options{Latency: 30 * time.Millisecond}, script: "healthz.js",
			thresh: map[string][]string{"http_req_duration": {"p(95)<10"}}, wantErr: loadtest.ErrThresholds,
			wantMsg: []string{"http_req_duration p(95)<10 (p(95)="}},
		{name: "errors cross http_req_failed", app: app.Options{ErrorRate: 0.5}, script: "healthz.js",
			thresh: map[string][]string{"http_req_failed": {"rate<0.01"}}, wantErr: loadtest.ErrThresholds,
			wantMsg: []string{"http_req_failed rate<0.01 (rate=", "checks rate>0.99"}},
		{name: "syntax error", script: "syntax.js", wantErr: loadtest.ErrScript, wantMsg: []string{"syntax.js", "Unexpected"}},
		{name: "missing script", script: "nope.js", wantErr: loadtest.ErrScript, wantMsg: []string{"nope.js"}},
		{name: "refused target", target: refusedTarget(t), script: "healthz.js", wantErr: loadtest.ErrTargetUnreachable,
			wantMsg: []string{"connection refused"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			url := tt.target
			if url == "" {
				url = target(t, tt.app)
			}
			out := &lockedBuffer{}
			dir := t.TempDir()
			res, err := loadtest.Run(t.Context(), loadtest.Options{
				K6: bin, Script: filepath.Join(testdata, tt.script), Dir: dir, Target: url,
				VUs: 2, Duration: 2 * time.Second, Thresholds: tt.thresh, Output: out,
			})
			if !errors.Is(err, tt.wantErr) || (err == nil) != (tt.wantErr == nil) {
				t.Fatalf("Run: %v, want %v\noutput:\n%s", err, tt.wantErr, out)
			}
			for _, m := range tt.wantMsg {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("error %q does not contain %q", err, m)
				}
			}
			if tt.wantErr != nil && tt.wantErr != loadtest.ErrThresholds {
				return
			}
			if res == nil || res.Summary == nil || len(res.SummaryJSON) == 0 {
				t.Fatalf("no summary: %+v", res)
			}
			s := res.Summary
			if s.Requests == 0 || s.Iterations == 0 || s.DurationP99 == 0 {
				t.Errorf("summary lacks requests, iterations or p99: %+v", s)
			}
			// The stage's thresholds are merged with the script's own.
			var metrics []string
			for _, th := range s.Thresholds {
				metrics = append(metrics, th.Metric)
			}
			if !strings.Contains(strings.Join(metrics, ","), "checks") {
				t.Errorf("the script's own threshold on checks is missing: %v", s.Thresholds)
			}
			for m := range tt.thresh {
				if !strings.Contains(strings.Join(metrics, ","), m) {
					t.Errorf("the stage's threshold on %s is missing: %v", m, s.Thresholds)
				}
			}
			// The script's own handleSummary still writes its files.
			if own, err := os.ReadFile(filepath.Join(dir, "own-summary.txt")); err != nil || !strings.HasPrefix(string(own), "iterations ") {
				t.Errorf("the script's handleSummary output: %q, %v", own, err)
			}
			if !strings.Contains(out.String(), "running (") {
				t.Errorf("no progress lines in k6's output:\n%s", out)
			}
		})
	}
}

func TestRunCanceled(t *testing.T) {
	bin := k6(t)
	ctx, cancel := context.WithCancel(t.Context())
	out := &lockedBuffer{}
	done := make(chan error, 1)
	go func() {
		_, err := loadtest.Run(ctx, loadtest.Options{
			K6: bin, Script: filepath.Join("testdata", "healthz.js"), Target: target(t, app.Options{}),
			VUs: 1, Duration: time.Hour, Output: out,
		})
		done <- err
	}()
	// Cancel once the test is running, as a cancelled stage would.
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(out.String(), "running (") && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, loadtest.ErrCanceled) {
			t.Errorf("Run after cancel: %v, want ErrCanceled", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after its context was cancelled")
	}
}
