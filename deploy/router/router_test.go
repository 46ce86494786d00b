package router_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-ci/sluice/deploy/proxy"
	"github.com/sluice-ci/sluice/deploy/router"
	"github.com/sluice-ci/sluice/internal/golden"
	"github.com/sluice-ci/sluice/internal/realtest"
)

// split sends n requests on fresh connections (so a reloaded nginx's new workers answer them)
// and returns the canary's share in percent.
func split(t *testing.T, u string, n int) float64 {
	t.Helper()
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	seen := map[string]int{}
	for range n {
		resp, err := c.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d through the router", resp.StatusCode)
		}
		seen[resp.Header.Get("X-Backend")]++
	}
	if seen["blue"]+seen["green"] != n {
		t.Fatalf("answers from unknown backends: %v", seen)
	}
	return 100 * float64(seen["green"]) / float64(n)
}

func TestRewriteUpstreamGolden(t *testing.T) {
	in, err := os.ReadFile("testdata/app.conf")
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []int{0, 10, 50, 100} {
		t.Run(fmt.Sprint(w), func(t *testing.T) {
			out, err := router.RewriteUpstream(in, "app", map[string]int{"blue": 100 - w, "green": w})
			if err != nil {
				t.Fatal(err)
			}
			golden.Check(t, filepath.Join("testdata", fmt.Sprintf("app.w%d.conf", w)), out)
			ws, err := router.UpstreamWeights(out, "app", "blue", "green")
			if err != nil {
				t.Fatal(err)
			}
			wantW := map[string]int{"blue": 100 - w, "green": w}
			if ws["blue"] != wantW["blue"] || ws["green"] != wantW["green"] {
				t.Errorf("read back %v, want %v", ws, wantW)
			}
			// Rewriting again changes nothing.
			again, err := router.RewriteUpstream(out, "app", wantW)
			if err != nil || !bytes.Equal(again, out) {
				t.Errorf("rewrite is not idempotent: %v", err)
			}
		})
	}
}

func TestRewriteUpstreamErrors(t *testing.T) {
	in, err := os.ReadFile("testdata/app.conf")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		upstream string
		weights  map[string]int
		conf     string
		notFound bool
	}{
		{"no such upstream", "web", map[string]int{"blue": 1}, string(in), true},
		{"no such server", "app", map[string]int{"purple": 1}, string(in), true},
		{"the retired server in a comment is not a server", "app", map[string]int{"10.0.0.9:8080": 1}, string(in), true},
		{"two names, one server", "app", map[string]int{"blue": 1, "10.0.0.1": 2}, string(in), false},
		{"ambiguous name", "app", map[string]int{"x": 1}, "upstream app {\n server a:1; # x\n server b:1; # x\n}\n", false},
		{"unclosed", "app", map[string]int{"a": 1}, "upstream app {\n server a:1;\n", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := router.RewriteUpstream([]byte(tt.conf), tt.upstream, tt.weights)
			if err == nil || errors.Is(err, router.ErrServerNotFound) != tt.notFound {
				t.Errorf("err %v, want not-found %v", err, tt.notFound)
			}
		})
	}
}

func TestBuiltin(t *testing.T) {
	blue := realtest.StartBackend(t, "blue", realtest.Fault{})
	green := realtest.StartBackend(t, "green", realtest.Fault{})
	bu, _ := url.Parse(blue.URL)
	gu, _ := url.Parse(green.URL)
	p, err := proxy.New(proxy.Config{Stable: bu, Canary: gu})
	if err != nil {
		t.Fatal(err)
	}
	front := httptest.NewServer(p)
	admin := httptest.NewServer(p.AdminHandler())
	defer front.Close()
	defer admin.Close()
	r := &router.Builtin{Admin: admin.Listener.Addr().String()}
	ctx := context.Background()
	for _, w := range []int{10, 50, 100, 0} {
		if err := r.SetWeight(ctx, w); err != nil {
			t.Fatal(err)
		}
		if got, err := r.Weight(ctx); err != nil || got != w {
			t.Fatalf("weight %d read back as %d, %v", w, got, err)
		}
		if got := split(t, front.URL, 400); math.Abs(got-float64(w)) > 7.5 {
			t.Errorf("weight %d: canary got %.1f%%", w, got)
		}
	}
	if err := r.SetWeight(ctx, 101); !errors.Is(err, router.ErrWeight) {
		t.Errorf("weight 101: %v", err)
	}
}

func nginxUpstream(blue, green int) string {
	return fmt.Sprintf("upstream app {\n\tserver 127.0.0.1:%d weight=100; # blue\n\tserver 127.0.0.1:%d down; # green\n\tkeepalive 8;\n}\n", blue, green)
}

func TestNginx(t *testing.T) {
	blue := realtest.StartBackend(t, "blue", realtest.Fault{})
	green := realtest.StartBackend(t, "green", realtest.Fault{})
	n := realtest.StartNginx(t, nginxUpstream(blue.Port(), green.Port()))
	r := &router.Nginx{Config: n.UpstreamConf, Upstream: "app", Stable: "blue", Canary: "green", Bin: n.Bin, Args: n.Args}
	ctx := context.Background()
	front := "http://" + realtest.Addr(n.Port)
	if got := split(t, front, 50); got != 0 {
		t.Fatalf("before any step the canary got %.1f%%", got)
	}
	for _, w := range []int{10, 50, 100, 0} {
		before := n.Workers(t)
		if err := r.SetWeight(ctx, w); err != nil {
			t.Fatal(err)
		}
		if got, err := r.Weight(ctx); err != nil || got != w {
			t.Fatalf("weight %d read back as %d, %v", w, got, err)
		}
		n.WaitReloaded(t, before)
		// nginx's smooth weighted round robin is exact over whole cycles.
		if got := split(t, front, 200); math.Abs(got-float64(w)) > 2 {
			t.Errorf("weight %d: canary got %.1f%% through nginx", w, got)
		}
	}
}

// A configuration nginx -t rejects is never left in place: the old file comes back byte for
// byte, the step fails, and the running nginx keeps serving the old weights.
func TestNginxRejectedConfigRestored(t *testing.T) {
	blue := realtest.StartBackend(t, "blue", realtest.Fault{})
	green := realtest.StartBackend(t, "green", realtest.Fault{})
	n := realtest.StartNginx(t, nginxUpstream(blue.Port(), green.Port()))
	// Someone broke the file after nginx started: a parameter nginx does not know.
	broken := strings.Replace(nginxUpstream(blue.Port(), green.Port()), "weight=100;", "weight=100 bogus=1;", 1)
	if err := os.WriteFile(n.UpstreamConf, []byte(broken), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(n.UpstreamConf, 0o640); err != nil {
		t.Fatal(err)
	}
	r := &router.Nginx{Config: n.UpstreamConf, Upstream: "app", Stable: "blue", Canary: "green", Bin: n.Bin, Args: n.Args}
	err := r.SetWeight(context.Background(), 50)
	if !errors.Is(err, router.ErrConfigTest) {
		t.Fatalf("SetWeight on a broken config: %v", err)
	}
	t.Logf("error: %v", err)
	if !strings.Contains(err.Error(), "bogus") {
		t.Errorf("error does not carry nginx's complaint: %v", err)
	}
	got, err := os.ReadFile(n.UpstreamConf)
	if err != nil || string(got) != broken {
		t.Errorf("file not restored (%v):\n%s", err, got)
	}
	if fi, err := os.Stat(n.UpstreamConf); err != nil || fi.Mode().Perm() != 0o640 {
		t.Errorf("mode not kept: %v %v", fi.Mode(), err)
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(n.UpstreamConf), ".upstream.conf.*")); len(left) > 0 {
		t.Errorf("temporary files left: %v", left)
	}
	if share := split(t, "http://"+realtest.Addr(n.Port), 50); share != 0 {
		t.Errorf("running nginx changed: canary got %.1f%%", share)
	}
}

func TestHAProxy(t *testing.T) {
	blue := realtest.StartBackend(t, "blue", realtest.Fault{})
	green := realtest.StartBackend(t, "green", realtest.Fault{})
	h := realtest.StartHAProxy(t, blue.Port(), green.Port())
	r := &router.HAProxy{Socket: h.Socket, Backend: "app", Stable: "blue", Canary: "green"}
	ctx := context.Background()
	front := "http://" + realtest.Addr(h.Port)
	if got, err := r.Weight(ctx); err != nil || got != 0 {
		t.Fatalf("initial weight %d, %v", got, err)
	}
	for _, w := range []int{10, 50, 100, 0} {
		if err := r.SetWeight(ctx, w); err != nil {
			t.Fatal(err)
		}
		if got, err := r.Weight(ctx); err != nil || got != w {
			t.Fatalf("weight %d read back as %d, %v", w, got, err)
		}
		if got := split(t, front, 200); math.Abs(got-float64(w)) > 2 {
			t.Errorf("weight %d: canary got %.1f%% through haproxy", w, got)
		}
	}
	for name, bad := range map[string]*router.HAProxy{
		"unknown server":  {Socket: h.Socket, Backend: "app", Stable: "blue", Canary: "purple"},
		"unknown backend": {Socket: h.Socket, Backend: "web", Stable: "blue", Canary: "green"},
		"no socket":       {Socket: filepath.Join(t.TempDir(), "none.sock"), Backend: "app", Stable: "blue", Canary: "green"},
	} {
		if err := bad.SetWeight(ctx, 10); err == nil {
			t.Errorf("%s: set weight: no error", name)
		}
		if _, err := bad.Weight(ctx); err == nil {
			t.Errorf("%s: read weight: no error", name)
		}
	}
	if err := r.SetWeight(ctx, -1); !errors.Is(err, router.ErrWeight) {
		t.Errorf("weight -1: %v", err)
	}
}
