package metrics

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-ci/sluice/deploy/proxy"
)

// Builtin reads a `sluice router`'s stats over its admin API.
type Builtin struct {
	// Admin is the router's admin address, host:port or a URL.
	Admin  string
	Client *http.Client
}

// Measure reads the router's stats, waits d (or until ctx ends), reads them again and returns
// what each backend served in between.
func (b *Builtin) Measure(ctx context.Context, d time.Duration) (Pair, error) {
	start := time.Now()
	before, err := b.Stats(ctx, nil)
	if err != nil {
		return Pair{}, err
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return Pair{}, fmt.Errorf("measure %s: %w", b.Admin, ctx.Err())
	case <-t.C:
	}
	cursors := map[string]uint64{}
	for _, bs := range before.Backends {
		cursors[bs.Role] = bs.Cursor
	}
	after, err := b.Stats(ctx, cursors)
	if err != nil {
		return Pair{}, err
	}
	end := time.Now()
	var p Pair
	for role, dst := range map[string]*Observation{proxy.RoleStable: &p.Stable, proxy.RoleCanary: &p.Canary} {
		b0, ok0 := before.Backend(role)
		b1, ok1 := after.Backend(role)
		if !ok0 || !ok1 {
			return Pair{}, fmt.Errorf("router %s: stats have no %s backend", b.Admin, role)
		}
		o, err := Delta(b0, b1)
		if err != nil {
			return Pair{}, fmt.Errorf("router %s: %s backend: %w", b.Admin, role, err)
		}
		o.Start, o.End = start, end
		*dst = o
	}
	return p, nil
}

// Delta turns two readings of a backend's stats into an observation of what happened between
// them; after must have been read with before's cursor.
func Delta(before, after proxy.BackendStats) (Observation, error) {
	if after.Requests < before.Requests || after.Errors < before.Errors || after.Empty < before.Empty {
		return Observation{}, ErrCounterReset
	}
	o := Observation{Backend: after.Name, Values: map[string]float64{}, Latencies: after.Latencies}
	n := float64(after.Requests - before.Requests)
	o.Values[Requests] = n
	if n > 0 {
		finite(o.Values, ErrorRate, float64(after.Errors-before.Errors)/n)
		finite(o.Values, NullResponseRate, float64(after.Empty-before.Empty)/n)
	}
	latencyValues(o.Values, o.Latencies)
	return o, nil
}

// Stats reads the router's /stats; since maps a role to the latency cursor to read after.
func (b *Builtin) Stats(ctx context.Context, since map[string]uint64) (proxy.Stats, error) {
	q := url.Values{}
	for role, c := range since {
		q.Set(role, strconv.FormatUint(c, 10))
	}
	u := AdminURL(b.Admin) + "/stats"
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return proxy.Stats{}, fmt.Errorf("router stats %s: %w", u, err)
	}
	resp, err := client(b.Client).Do(req)
	if err != nil {
		return proxy.Stats{}, fmt.Errorf("router stats: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return proxy.Stats{}, fmt.Errorf("router stats %s: %s: %s", u, resp.Status, strings.TrimSpace(string(body)))
	}
	var s proxy.Stats
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		return proxy.Stats{}, fmt.Errorf("router stats %s: decode: %w", u, err)
	}
	return s, nil
}

// AdminURL turns a router admin address (host:port or URL) into a base URL without a
// trailing slash.
func AdminURL(addr string) string {
	if !strings.Contains(addr, "://") {
		addr = "http://" + addr
	}
	return strings.TrimRight(addr, "/")
}

func client(c *http.Client) *http.Client {
	if c == nil {
		return &http.Client{Timeout: 10 * time.Second}
	}
	return c
}
