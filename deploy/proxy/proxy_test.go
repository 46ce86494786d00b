package proxy_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/sluice-ci/sluice/deploy/proxy"
	"github.com/sluice-ci/sluice/internal/realtest"
)

type fixture struct {
	proxy          *proxy.Proxy
	front, admin   *httptest.Server
	stable, canary *realtest.Backend
}

func start(t testing.TB, stableFault, canaryFault realtest.Fault, weight int) *fixture {
	t.Helper()
	f := &fixture{
		stable: realtest.StartBackend(t, "blue", stableFault),
		canary: realtest.StartBackend(t, "green", canaryFault),
	}
	su, _ := url.Parse(f.stable.URL)
	cu, _ := url.Parse(f.canary.URL)
	p, err := proxy.New(proxy.Config{Stable: su, Canary: cu, StableName: "blue", CanaryName: "green", Weight: weight, Reservoir: 64})
	if err != nil {
		t.Fatal(err)
	}
	f.proxy = p
	f.front = httptest.NewServer(p)
	f.admin = httptest.NewServer(p.AdminHandler())
	t.Cleanup(f.front.Close)
	t.Cleanup(f.admin.Close)
	return f
}

// get sends n requests through the proxy and counts the answers by backend.
func get(t testing.TB, c *http.Client, u string, n int) map[string]int {
	t.Helper()
	seen := map[string]int{}
	for range n {
		resp, err := c.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		seen[resp.Header.Get("X-Backend")]++
	}
	return seen
}

// counted waits until the proxy has counted n requests: it counts one once its response is
// written, which the client may have read already.
func counted(t *testing.T, p *proxy.Proxy, n int64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		s := p.Stats(nil)
		c, _ := s.Backend(proxy.RoleCanary)
		st, _ := s.Backend(proxy.RoleStable)
		if c.Requests+st.Requests >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d requests counted, want %d", c.Requests+st.Requests, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// The canary's share of real traffic follows the weight: exactly at 0 and 100, within 6.5
// points (four standard deviations of a fair draw at 50%) over 1000 requests in between.
func TestSplitFollowsWeight(t *testing.T) {
	f := start(t, realtest.Fault{}, realtest.Fault{}, 0)
	const n = 1000
	for _, w := range []int{0, 10, 50, 90, 100} {
		t.Run(fmt.Sprint(w), func(t *testing.T) {
			if err := f.proxy.SetWeight(w); err != nil {
				t.Fatal(err)
			}
			seen := get(t, f.front.Client(), f.front.URL, n)
			got := 100 * float64(seen["green"]) / n
			if seen["green"]+seen["blue"] != n || math.Abs(got-float64(w)) > 6.5 || (w%100 == 0 && got != float64(w)) {
				t.Errorf("weight %d: canary got %.1f%% (%v)", w, got, seen)
			}
		})
	}
}

func TestStatsCountFaults(t *testing.T) {
	f := start(t, realtest.Fault{EmptyEvery: 50}, realtest.Fault{ErrorEvery: 4, EmptyEvery: 5}, 100)
	get(t, f.front.Client(), f.front.URL, 100)
	if err := f.proxy.SetWeight(0); err != nil {
		t.Fatal(err)
	}
	get(t, f.front.Client(), f.front.URL, 100)

	counted(t, f.proxy, 200)
	s := f.proxy.Stats(map[string]uint64{proxy.RoleCanary: 90})
	canary, _ := s.Backend(proxy.RoleCanary)
	stable, _ := s.Backend(proxy.RoleStable)
	// Canary: every 4th request a 500 (25), every 5th an empty 200 unless it was a 500
	// already (20 - 5 = 15). Stable: every 50th empty (2).
	if canary.Requests != 100 || canary.Errors != 25 || canary.Empty != 15 || canary.Name != "green" {
		t.Errorf("canary stats %+v", canary)
	}
	if stable.Requests != 100 || stable.Errors != 0 || stable.Empty != 2 || stable.Name != "blue" {
		t.Errorf("stable stats %+v", stable)
	}
	if canary.Cursor != 100 || len(canary.Latencies) != 10 {
		t.Errorf("canary cursor %d, %d samples after cursor 90, want 100 and 10", canary.Cursor, len(canary.Latencies))
	}
	if stable.Latencies != nil {
		t.Errorf("stable samples without a cursor: %d", len(stable.Latencies))
	}
	// The reservoir is bounded: from cursor 0 only the most recent 64 remain.
	s = f.proxy.Stats(map[string]uint64{proxy.RoleStable: 0})
	if st, _ := s.Backend(proxy.RoleStable); len(st.Latencies) != 64 {
		t.Errorf("%d samples from cursor 0, want the reservoir's 64", len(st.Latencies))
	}
}

// A body of the JSON literal null counts as a null response.
func TestNullBody(t *testing.T) {
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, r.URL.Query().Get("body"))
	}))
	defer be.Close()
	u, _ := url.Parse(be.URL)
	p, err := proxy.New(proxy.Config{Stable: u, Canary: u})
	if err != nil {
		t.Fatal(err)
	}
	front := httptest.NewServer(p)
	defer front.Close()
	for _, body := range []string{"null", "", "nul", "nulls", "{}"} {
		resp, err := front.Client().Get(front.URL + "?body=" + body)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	counted(t, p, 5)
	if st, _ := p.Stats(nil).Backend(proxy.RoleStable); st.Empty != 2 {
		t.Errorf("%d null responses, want 2 (null and empty)", st.Empty)
	}
}

func TestAdminAPI(t *testing.T) {
	f := start(t, realtest.Fault{}, realtest.Fault{}, 0)
	c := f.admin.Client()
	do := func(method, path, body string) (int, string) {
		req, _ := http.NewRequest(method, f.admin.URL+path, strings.NewReader(body))
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, strings.TrimSpace(string(b))
	}
	tests := []struct {
		method, path, body string
		code               int
		want               string
	}{
		{"GET", "/weight", "", 200, `{"canary_weight":0}`},
		{"PUT", "/weight", `{"canary_weight":25}`, 200, `{"canary_weight":25}`},
		{"GET", "/weight", "", 200, `{"canary_weight":25}`},
		{"POST", "/weight", `{"canary_weight":100}`, 200, `{"canary_weight":100}`},
		{"PUT", "/weight", `{"canary_weight":101}`, 400, `{"error":"set weight 101: canary weight must be 0-100"}`},
		{"PUT", "/weight", `{"canary_weight":-1}`, 400, `{"error":"set weight -1: canary weight must be 0-100"}`},
		{"PUT", "/weight", `{"weight":5}`, 400, `{"error":"weight body: json: unknown field \"weight\" (want {\"canary_weight\": 0-100})"}`},
		{"GET", "/weight", "", 200, `{"canary_weight":100}`},
		{"GET", "/stats?canary=x", "", 400, `{"error":"cursor canary=\"x\": strconv.ParseUint: parsing \"x\": invalid syntax"}`},
		{"GET", "/healthz", "", 200, ``},
		{"DELETE", "/weight", "", 405, `Method Not Allowed`},
	}
	for _, tt := range tests {
		code, body := do(tt.method, tt.path, tt.body)
		if code != tt.code || body != tt.want {
			t.Errorf("%s %s %s: %d %s, want %d %s", tt.method, tt.path, tt.body, code, body, tt.code, tt.want)
		}
	}
	var s proxy.Stats
	_, body := do("GET", "/stats?stable=0&canary=0", "")
	if err := json.Unmarshal([]byte(body), &s); err != nil || s.Weight != 100 || len(s.Backends) != 2 {
		t.Errorf("stats %s: %v", body, err)
	}
}

func TestMetricsExported(t *testing.T) {
	f := start(t, realtest.Fault{}, realtest.Fault{ErrorEvery: 2}, 100)
	get(t, f.front.Client(), f.front.URL, 10)
	counted(t, f.proxy, 10)
	resp, err := f.admin.Client().Get(f.admin.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	text, _ := io.ReadAll(resp.Body)
	for _, want := range []string{
		`sluice_router_requests_total{backend="green",role="canary"} 10`,
		`sluice_router_requests_total{backend="blue",role="stable"} 0`,
		`sluice_router_responses_5xx_total{backend="green",role="canary"} 5`,
		`sluice_router_empty_responses_total{backend="green",role="canary"} 0`,
		`sluice_router_request_duration_seconds_count{backend="green",role="canary"} 10`,
		`sluice_router_canary_weight 100`,
	} {
		if !bytes.Contains(text, []byte(want+"\n")) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

// Bodies stream: the client reads the first chunk while the backend is still holding the
// rest back, and the request body reaches the backend before the client has finished it.
func TestStreaming(t *testing.T) {
	release := make(chan struct{})
	gotFirst := make(chan string, 1)
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := http.NewResponseController(w).EnableFullDuplex(); err != nil {
			t.Error(err)
		}
		line, _ := bufio.NewReader(r.Body).ReadString('\n')
		gotFirst <- line
		fmt.Fprintln(w, "first")
		w.(http.Flusher).Flush()
		<-release
		fmt.Fprintln(w, "second")
	}))
	defer be.Close()
	u, _ := url.Parse(be.URL)
	p, err := proxy.New(proxy.Config{Stable: u, Canary: u})
	if err != nil {
		t.Fatal(err)
	}
	front := httptest.NewServer(p)
	defer front.Close()

	pr, pw := io.Pipe()
	go func() {
		fmt.Fprintln(pw, "hello")
		<-release
		pw.Close()
	}()
	resp, err := front.Client().Post(front.URL, "text/plain", pr)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if line := <-gotFirst; line != "hello\n" {
		t.Errorf("backend got %q before the request body ended", line)
	}
	br := bufio.NewReader(resp.Body)
	if line, err := br.ReadString('\n'); err != nil || line != "first\n" {
		t.Fatalf("first chunk %q, %v", line, err)
	}
	close(release)
	if rest, _ := io.ReadAll(br); string(rest) != "second\n" {
		t.Errorf("rest %q", rest)
	}
}

// Connections to the backends are kept alive: 200 sequential requests use a handful.
func TestKeepAlive(t *testing.T) {
	f := start(t, realtest.Fault{}, realtest.Fault{}, 50)
	get(t, f.front.Client(), f.front.URL, 200)
	if n := f.stable.Conns.Load() + f.canary.Conns.Load(); n > 4 {
		t.Errorf("%d backend connections for 200 sequential requests", n)
	}
}

func TestUnreachableBackendIs5xx(t *testing.T) {
	f := start(t, realtest.Fault{}, realtest.Fault{}, 100)
	f.canary.Close()
	resp, err := f.front.Client().Get(f.front.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if c, _ := f.proxy.Stats(nil).Backend(proxy.RoleCanary); resp.StatusCode != http.StatusBadGateway || c.Errors != 1 || c.Empty != 0 {
		t.Errorf("status %d, canary stats %+v", resp.StatusCode, c)
	}
}

func TestConfigErrors(t *testing.T) {
	u, _ := url.Parse("http://127.0.0.1:1")
	for _, c := range []proxy.Config{
		{Stable: u},
		{Stable: u, Canary: u, Weight: 101},
		{Stable: u, Canary: u, StableName: "x", CanaryName: "x"},
	} {
		if _, err := proxy.New(c); err == nil {
			t.Errorf("%+v: no error", c)
		}
	}
}

// A client that gives up is counted, but not as a backend error.
func TestClientGoneIsNotAnError(t *testing.T) {
	arrived := make(chan struct{})
	release := make(chan struct{})
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(arrived)
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer be.Close()
	defer close(release)
	u, _ := url.Parse(be.URL)
	p, err := proxy.New(proxy.Config{Stable: u, Canary: u})
	if err != nil {
		t.Fatal(err)
	}
	front := httptest.NewServer(p)
	defer front.Close()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, front.URL, nil)
	go func() {
		<-arrived
		cancel()
	}()
	if _, err := front.Client().Do(req); !errors.Is(err, context.Canceled) {
		t.Fatalf("request: %v", err)
	}
	// The proxy notices the client leaving on its own schedule; wait for it to count.
	for {
		st, _ := p.Stats(nil).Backend(proxy.RoleStable)
		if st.Requests == 1 {
			if st.Errors != 0 || st.Empty != 0 {
				t.Errorf("abandoned request counted as error or empty: %+v", st)
			}
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}
