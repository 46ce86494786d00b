// Package e2e drives the hello service over real HTTP, as a browser or client would.
package e2e

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"example.com/hello/greet"
)

func TestJourneys(t *testing.T) {
	srv := httptest.NewServer(greet.Handler())
	defer srv.Close()

	tests := []struct {
		name, method, path string
		status             int
		body               string
	}{
		{"greets by name", http.MethodGet, "/?name=Ada", http.StatusOK, "hello, Ada\n"},
		{"greets the world", http.MethodGet, "/", http.StatusOK, "hello, world\n"},
		{"health check", http.MethodGet, "/healthz", http.StatusOK, "ok\n"},
		{"unknown page", http.MethodGet, "/nope", http.StatusNotFound, ""},
		{"wrong method", http.MethodPost, "/", http.StatusMethodNotAllowed, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequestWithContext(t.Context(), tt.method, srv.URL+tt.path, strings.NewReader(""))
			if err != nil {
				t.Fatal(err)
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tt.status {
				t.Fatalf("%s %s: status %d, want %d", tt.method, tt.path, resp.StatusCode, tt.status)
			}
			if tt.body != "" && string(body) != tt.body {
				t.Errorf("%s %s: body %q, want %q", tt.method, tt.path, body, tt.body)
			}
		})
	}
}
