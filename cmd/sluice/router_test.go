package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// `sluice router` proxies by weight, takes a new weight on its admin API, and exports
// per-backend metrics; Ctrl-C (its context) stops it cleanly.
func TestRouterCommand(t *testing.T) {
	answer := func(name string) *httptest.Server {
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, name) }))
		t.Cleanup(s.Close)
		return s
	}
	blue, green := answer("blue"), answer("green")
	listen, admin := freeAddr(t), freeAddr(t)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan int, 1)
	go func() {
		code, _, _ := cliCtx(ctx, "router", "--listen", listen, "--admin", admin, "--stable", blue.URL, "--canary", green.URL,
			"--stable-name", "blue", "--canary-name", "green")
		done <- code
	}()
	get := func(url string) string {
		deadline := time.Now().Add(10 * time.Second)
		for {
			resp, err := http.Get(url)
			if err == nil {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				return string(b)
			}
			if time.Now().After(deadline) {
				t.Fatalf("GET %s: %v", url, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	if got := get("http://" + listen + "/"); got != "blue" {
		t.Fatalf("at weight 0 the router answered %q", got)
	}
	req, _ := http.NewRequest(http.MethodPut, "http://"+admin+"/weight", strings.NewReader(`{"canary_weight": 100}`))
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT /weight: %v %v", resp, err)
	}
	if got := get("http://" + listen + "/"); got != "green" {
		t.Fatalf("at weight 100 the router answered %q", got)
	}
	if m := get("http://" + admin + "/metrics"); !strings.Contains(m, `sluice_router_requests_total{backend="green"`) {
		t.Fatalf("metrics lack the green backend's requests:\n%s", m)
	}
	cancel()
	select {
	case code := <-done:
		if code != exitOK && code != exitInterrupted {
			t.Fatalf("router exited %d when stopped", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("router did not stop")
	}
}
