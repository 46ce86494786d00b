package e2e

import (
	"bytes"
	"image/png"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

func TestJourneys(t *testing.T) {
	e := needBrowser(t)
	s := newSite(t)
	tests := []struct {
		file       string
		status     Status
		failed     int    // the step that must fail
		msg        string // in the failure message
		screenshot string // a screenshot that must be stored
	}{
		{file: "pass.yaml", status: StatusPassed, screenshot: "items.png"},
		{file: "broken-button.yaml", status: StatusFailed, failed: 3, msg: `text "Saved" not found in "#status"`, screenshot: "03-expect_text-failed.png"},
		{file: "js-error.yaml", status: StatusFailed, failed: 3, msg: "widget failed to load", screenshot: "03-expect_no_console_errors-failed.png"},
		{file: "wrong-text.yaml", status: StatusFailed, failed: 2, msg: `text "Orders" not found in "h1"; it shows "Items"`, screenshot: "02-expect_text-failed.png"},
		{file: "not-found.yaml", status: StatusFailed, failed: 1, msg: "answered HTTP 404", screenshot: "01-goto-failed.png"},
		{file: "visit.yaml", status: StatusPassed},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			j := loadJourney(t, "testdata/journeys/"+tt.file)
			r := e.Run(t.Context(), j, RunOptions{BaseURL: s.URL})
			if r.Status != tt.status || r.Failed != tt.failed {
				t.Fatalf("status %s, failed step %d (%s); want %s, step %d", r.Status, r.Failed, r.Message, tt.status, tt.failed)
			}
			if !strings.Contains(r.Message, tt.msg) {
				t.Errorf("message %q does not contain %q", r.Message, tt.msg)
			}
			if tt.failed > 0 {
				wantPrefix := "step " + itoa(tt.failed) + " (testdata/journeys/" + tt.file + ":"
				if !strings.HasPrefix(r.Message, wantPrefix) {
					t.Errorf("message %q does not start with %q", r.Message, wantPrefix)
				}
				if r.Line != j.Steps[tt.failed-1].Line {
					t.Errorf("line %d, want %d", r.Line, j.Steps[tt.failed-1].Line)
				}
			}
			if len(r.Steps) != len(j.Steps) {
				t.Errorf("%d step results for %d steps", len(r.Steps), len(j.Steps))
			}
			if tt.screenshot != "" {
				shot := findShot(r, tt.screenshot)
				if shot == nil {
					t.Fatalf("no screenshot %s among %v", tt.screenshot, shotNames(r))
				}
				if _, err := png.Decode(bytes.NewReader(shot.PNG)); err != nil {
					t.Errorf("screenshot %s is not a PNG: %v", shot.Name, err)
				}
			}
		})
	}
}

// TestVisitIsolated runs the same journey twice: the second run must not see the first
// one's cookies or local storage.
func TestVisitIsolated(t *testing.T) {
	e := needBrowser(t)
	s := newSite(t)
	j := loadJourney(t, "testdata/journeys/visit.yaml")
	for i := range 2 {
		if r := e.Run(t.Context(), j, RunOptions{BaseURL: s.URL}); r.Status != StatusPassed {
			t.Fatalf("run %d: %s", i+1, r.Message)
		}
	}
}

func TestRecordsConsoleAndRequests(t *testing.T) {
	e := needBrowser(t)
	s := newSite(t)
	j := loadJourney(t, "testdata/journeys/js-error.yaml")
	r := e.Run(t.Context(), j, RunOptions{BaseURL: s.URL})
	if len(r.Exceptions) != 1 || !strings.Contains(r.Exceptions[0], "TypeError") {
		t.Errorf("exceptions %q, want one TypeError", r.Exceptions)
	}
	errs := r.ConsoleErrors()
	if len(errs) != 2 {
		t.Errorf("console errors %q, want the console.error and the exception", errs)
	}
	nf := e.Run(t.Context(), loadJourney(t, "testdata/journeys/not-found.yaml"), RunOptions{BaseURL: s.URL})
	if len(nf.FailedRequests) == 0 || !strings.Contains(nf.FailedRequests[0], "/no-such-page: 404") {
		t.Errorf("failed requests %q, want the 404 of /no-such-page", nf.FailedRequests)
	}
}

func TestTargetDown(t *testing.T) {
	e := needBrowser(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := "http://" + l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	r := e.Run(t.Context(), loadJourney(t, "testdata/journeys/pass.yaml"), RunOptions{BaseURL: down})
	if r.Status != StatusFailed || r.Failed != 1 {
		t.Fatalf("status %s step %d: %s", r.Status, r.Failed, r.Message)
	}
	if want := "target " + down + " is down: net::ERR_CONNECTION_REFUSED"; !strings.Contains(r.Message, want) {
		t.Errorf("message %q does not contain %q", r.Message, want)
	}
}

// TestBrowserCrash kills the browser in the middle of a journey: that journey fails with
// ErrBrowserCrashed, and the next journey runs on a new browser.
func TestBrowserCrash(t *testing.T) {
	e := needBrowser(t)
	s := newSite(t)
	hang, err := Parse("hang.yaml", []byte("steps:\n  - goto: /hang\n    timeout: 60s\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	starts := e.Stats().Starts
	pid := e.BrowserPID()
	if pid == 0 {
		t.Fatal("no browser running")
	}
	killed := make(chan error, 1)
	go func() {
		<-s.hung
		killed <- syscall.Kill(pid, syscall.SIGKILL)
	}()
	r := e.Run(t.Context(), hang, RunOptions{BaseURL: s.URL})
	if err := <-killed; err != nil {
		t.Fatalf("kill the browser: %v", err)
	}
	if r.Status != StatusError || !strings.Contains(r.Message, ErrBrowserCrashed.Error()) {
		t.Fatalf("status %s: %q; want an error naming the crash", r.Status, r.Message)
	}
	next := e.Run(t.Context(), loadJourney(t, "testdata/journeys/visit.yaml"), RunOptions{BaseURL: s.URL})
	if next.Status != StatusPassed {
		t.Fatalf("journey after the crash: %s", next.Message)
	}
	if got := e.Stats().Starts; got != starts+1 {
		t.Errorf("browser starts %d, want %d", got, starts+1)
	}
	if p := e.BrowserPID(); p == pid || p == 0 {
		t.Errorf("browser pid %d after the restart (was %d)", p, pid)
	}
}

func TestMissingBrowser(t *testing.T) {
	_, err := New(Config{Chromium: "/nonexistent/chromium"})
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/chromium") {
		t.Fatalf("New with a missing browser: %v", err)
	}
	t.Setenv("PATH", t.TempDir())
	if _, err := os.Stat(DefaultChromium); err == nil {
		return // the default path exists here; the install hint is only for machines without it
	}
	if _, err := FindChromium(""); err == nil || !strings.Contains(err.Error(), "apt-get install -y chromium") {
		t.Errorf("FindChromium without a browser: %v", err)
	}
}

func findShot(r *Result, name string) *Screenshot {
	for i := range r.Screenshots {
		if r.Screenshots[i].Name == name {
			return &r.Screenshots[i]
		}
	}
	return nil
}

func shotNames(r *Result) []string {
	var n []string
	for _, s := range r.Screenshots {
		n = append(n, s.Name)
	}
	return n
}

func itoa(i int) string { return strconv.Itoa(i) }

// TestSelectorTheBrowserRejects: a selector that passes CheckSelector but names a
// pseudo-class the browser does not know fails its step as a bad selector, not a timeout.
func TestSelectorTheBrowserRejects(t *testing.T) {
	e := needBrowser(t)
	s := newSite(t)
	for _, step := range []string{`click: "button:no-such-pseudo"`, `expect_text: {selector: "h1:no-such-pseudo", text: x}`} {
		j, err := Parse("sel.yaml", []byte("steps:\n  - goto: /items\n  - "+step+"\n    timeout: 20s\n"), nil)
		if err != nil {
			t.Fatal(err)
		}
		r := e.Run(t.Context(), j, RunOptions{BaseURL: s.URL})
		if r.Failed != 2 || !strings.Contains(r.Message, "bad CSS selector") {
			t.Errorf("%s: step %d: %s", step, r.Failed, r.Message)
		}
	}
}
