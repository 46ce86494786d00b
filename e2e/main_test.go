package e2e

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"testing"
	"time"
)

// engine is the one browser every test of the package shares, as a worker process does;
// engineErr says why there is none.
var (
	engine    *Engine
	engineErr error
)

func TestMain(m *testing.M) {
	engine, engineErr = New(Config{Logger: slog.New(slog.DiscardHandler)})
	if engineErr == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		engineErr = engine.Start(ctx)
		cancel()
	}
	code := m.Run()
	if engine != nil {
		if err := engine.Close(); err != nil {
			fmt.Fprintln(os.Stderr, "close the browser:", err)
		}
	}
	os.Exit(code)
}

// needBrowser returns the shared engine. Without a browser the test is skipped, except
// under CI=true where a missing browser is a failure: the tier must run there.
func needBrowser(t *testing.T) *Engine {
	t.Helper()
	if engineErr != nil {
		msg := fmt.Sprintf("no browser for the e2e tests: %v (install the Debian package %q)", engineErr, ChromiumPackage)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return engine
}

// site serves testdata/site on loopback, plus a login form handler and /hang, a page that
// never answers (it reports each request on hung).
type site struct {
	*httptest.Server
	hung chan struct{}
	once sync.Once
	stop chan struct{}
}

func newSite(t testing.TB) *site {
	t.Helper()
	s := &site{hung: make(chan struct{}, 8), stop: make(chan struct{})}
	files := http.FileServer(http.Dir("testdata/site"))
	mux := http.NewServeMux()
	mux.HandleFunc("GET /login", func(w http.ResponseWriter, r *http.Request) {
		http.ServeFile(w, r, "testdata/site/login.html")
	})
	mux.HandleFunc("POST /login", func(w http.ResponseWriter, r *http.Request) {
		if r.FormValue("user") == "" || r.FormValue("password") == "" {
			http.Error(w, "user and password required", http.StatusUnauthorized)
			return
		}
		http.Redirect(w, r, "/items", http.StatusSeeOther)
	})
	mux.HandleFunc("GET /items", func(w http.ResponseWriter, r *http.Request) {
		http.ServeFile(w, r, "testdata/site/items.html")
	})
	mux.HandleFunc("GET /hang", func(w http.ResponseWriter, r *http.Request) {
		s.hung <- struct{}{}
		select {
		case <-r.Context().Done():
		case <-s.stop:
		}
	})
	mux.Handle("/", files)
	s.Server = httptest.NewServer(mux)
	t.Cleanup(func() {
		s.once.Do(func() { close(s.stop) })
		s.Close()
	})
	return s
}

var testVars = MapLookup(map[string]string{"USER_NAME": "alice"}, nil)

func loadJourney(t *testing.T, path string) *Journey {
	t.Helper()
	j, err := ParseFile(path, testVars)
	if err != nil {
		t.Fatalf("parse %s: %v", path, err)
	}
	return j
}
