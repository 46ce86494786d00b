package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestHealthcheck(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			_, _ = w.Write([]byte("ok"))
			return
		}
		http.Error(w, "JetStream not current", http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	tests := []struct {
		name string
		url  string
		code int
		want string // in stdout or stderr
	}{
		{"healthy", srv.URL + "/healthz", exitOK, "200 OK"},
		{"unhealthy", srv.URL + "/other", exitFailed, "503 Service Unavailable: JetStream not current"},
		{"refused", freeURL(t)[len("nats"):], exitFailed, "connection refused"},
		{"not http", "nats://127.0.0.1:4222", exitUsage, "want an http:// or https:// URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			url := tt.url
			if strings.HasPrefix(url, "://") {
				url = "http" + url + "/healthz"
			}
			code, stdout, stderr := cli(t, "healthcheck", "--timeout", "2s", url)
			if code != tt.code || !strings.Contains(stdout+stderr, tt.want) {
				t.Fatalf("exit %d (want %d), output lacks %q:\n%s%s", code, tt.code, tt.want, stdout, stderr)
			}
		})
	}
}
