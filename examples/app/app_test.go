package app_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-ci/sluice/examples/app"
)

// noRedirect lets tests see the redirects the pages answer with.
func noRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

func start(t *testing.T, o app.Options) (*httptest.Server, *http.Client) {
	t.Helper()
	srv := httptest.NewServer(app.New(o))
	t.Cleanup(srv.Close)
	c := srv.Client()
	c.CheckRedirect = noRedirect
	return srv, c
}

func do(t *testing.T, c *http.Client, method, u, contentType, body string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

func TestPaymentsAPI(t *testing.T) {
	srv, c := start(t, app.Options{Version: "v1"})
	tests := []struct {
		body       string
		wantCode   int
		wantStatus string
	}{
		{`{"amount": 100, "currency": "USD", "description": "coffee"}`, http.StatusCreated, app.StatusSucceeded},
		{`{"amount": 250000, "currency": "EUR", "description": "car"}`, http.StatusCreated, app.StatusPending},
		{`{"amount": 100, "currency": "USD", "description": "please Decline"}`, http.StatusCreated, app.StatusFailed},
		{`{"amount": 0, "currency": "USD"}`, http.StatusUnprocessableEntity, ""},
		{`{"amount": 10, "currency": "usd"}`, http.StatusUnprocessableEntity, ""},
		{`{"currency": "USD"}`, http.StatusBadRequest, ""},
		{`{"amount": 10, "currency": "USD", "extra": 1}`, http.StatusBadRequest, ""},
		{`not json`, http.StatusBadRequest, ""},
	}
	idPattern := regexp.MustCompile(`^pay_[0-9a-f]{24}$`)
	var created []string
	for _, tt := range tests {
		resp, body := do(t, c, http.MethodPost, srv.URL+"/api/payments", "application/json", tt.body)
		if resp.StatusCode != tt.wantCode {
			t.Errorf("POST %s: status %d, want %d (%s)", tt.body, resp.StatusCode, tt.wantCode, body)
			continue
		}
		if got := resp.Header.Get(app.VersionHeader); got != "v1" {
			t.Errorf("POST %s: %s %q, want v1", tt.body, app.VersionHeader, got)
		}
		var p app.Payment
		if err := json.Unmarshal([]byte(body), &p); err != nil {
			t.Fatalf("POST %s: %v", tt.body, err)
		}
		if tt.wantCode != http.StatusCreated {
			if !strings.Contains(body, `"error"`) {
				t.Errorf("POST %s: error response without an error field: %s", tt.body, body)
			}
			continue
		}
		if !idPattern.MatchString(p.ID) || p.Status != tt.wantStatus || p.CreatedAt.IsZero() {
			t.Errorf("POST %s: got %+v, want id like pay_..., status %s, created_at", tt.body, p, tt.wantStatus)
		}
		if _, err := time.Parse(time.RFC3339, jsonField(t, body, "created_at")); err != nil {
			t.Errorf("created_at is not RFC 3339: %v", err)
		}
		if got := resp.Header.Get("Location"); got != "/api/payments/"+p.ID {
			t.Errorf("Location %q", got)
		}
		created = append(created, p.ID)
	}

	resp, body := do(t, c, http.MethodGet, srv.URL+"/api/payments/"+created[0], "", "")
	if resp.StatusCode != http.StatusOK || jsonField(t, body, "id") != created[0] {
		t.Errorf("GET by id: %d %s", resp.StatusCode, body)
	}
	resp, _ = do(t, c, http.MethodGet, srv.URL+"/api/payments/pay_missing", "", "")
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET unknown id: %d, want 404", resp.StatusCode)
	}
	_, body = do(t, c, http.MethodGet, srv.URL+"/api/payments", "", "")
	var list struct{ Payments []app.Payment }
	if err := json.Unmarshal([]byte(body), &list); err != nil {
		t.Fatal(err)
	}
	if len(list.Payments) != len(created) || list.Payments[0].ID != created[len(created)-1] {
		t.Errorf("list: %d payments, first %v; want %d, newest first", len(list.Payments), list.Payments, len(created))
	}
	resp, body = do(t, c, http.MethodGet, srv.URL+"/healthz", "", "")
	if resp.StatusCode != http.StatusOK || jsonField(t, body, "version") != "v1" {
		t.Errorf("healthz: %d %s", resp.StatusCode, body)
	}
}

func jsonField(t *testing.T, body, field string) string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		t.Fatalf("%v: %s", err, body)
	}
	s, _ := m[field].(string)
	return s
}

func TestPages(t *testing.T) {
	srv, c := start(t, app.Options{Version: "v2"})
	form := func(path string, v url.Values) (*http.Response, string) {
		return do(t, c, http.MethodPost, srv.URL+path, "application/x-www-form-urlencoded", v.Encode())
	}
	resp, body := form("/login", url.Values{"user": {""}, "password": {"x"}})
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "Enter a user name") {
		t.Errorf("empty login: %d", resp.StatusCode)
	}
	resp, _ = form("/login", url.Values{"user": {"ada"}, "password": {"x"}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/payments" {
		t.Errorf("login: %d to %q, want 303 to /payments", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, body = form("/payments/new", url.Values{"amount": {"1250"}, "currency": {"usd"}, "description": {"<b>tea</b>"}})
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, "/payments/pay_") {
		t.Fatalf("create: %d to %q: %s", resp.StatusCode, loc, body)
	}
	resp, body = do(t, c, http.MethodGet, srv.URL+loc, "", "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("payment page: %d", resp.StatusCode)
	}
	for _, want := range []string{"12.50 USD", "succeeded", "&lt;b&gt;tea&lt;/b&gt;", strings.TrimPrefix(loc, "/payments/")} {
		if !strings.Contains(body, want) {
			t.Errorf("payment page lacks %q:\n%s", want, body)
		}
	}
	resp, body = form("/payments/new", url.Values{"amount": {"lots"}, "currency": {"USD"}})
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(body, "whole number") {
		t.Errorf("bad amount: %d", resp.StatusCode)
	}
	_, body = do(t, c, http.MethodGet, srv.URL+"/payments", "", "")
	if !strings.Contains(body, loc) {
		t.Errorf("list page lacks a link to %s", loc)
	}
	for _, path := range []string{"/login", "/payments/new"} {
		if resp, _ := do(t, c, http.MethodGet, srv.URL+path, "", ""); resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s: %d", path, resp.StatusCode)
		}
	}
	if resp, _ := do(t, c, http.MethodGet, srv.URL+"/payments/pay_nope", "", ""); resp.StatusCode != http.StatusNotFound {
		t.Errorf("unknown payment page: %d", resp.StatusCode)
	}
}

func TestFaults(t *testing.T) {
	srv, c := start(t, app.Options{Version: "bad", ErrorRate: 0.25})
	failed := 0
	for range 20 {
		if resp, _ := do(t, c, http.MethodGet, srv.URL+"/api/payments", "", ""); resp.StatusCode == http.StatusInternalServerError {
			failed++
		}
	}
	if failed != 5 {
		t.Errorf("%d of 20 requests failed at error rate 0.25, want 5", failed)
	}
}

func TestConcurrentCreates(t *testing.T) {
	srv, c := start(t, app.Options{Version: "v1"})
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 10 {
				req, _ := http.NewRequest(http.MethodPost, srv.URL+"/api/payments", strings.NewReader(`{"amount": 5, "currency": "USD"}`))
				resp, err := c.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				resp.Body.Close()
			}
		})
	}
	wg.Wait()
	_, body := do(t, c, http.MethodGet, srv.URL+"/api/payments", "", "")
	var list struct{ Payments []app.Payment }
	if err := json.Unmarshal([]byte(body), &list); err != nil {
		t.Fatal(err)
	}
	if len(list.Payments) != 80 {
		t.Errorf("%d payments after 80 concurrent creates", len(list.Payments))
	}
}
