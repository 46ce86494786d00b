// Package proxy is the built-in traffic router behind `sluice router`: a reverse proxy that
// sends a set share of requests to a canary backend and the rest to a stable one, with an
// admin API to read and change that share and per-backend stats for rollout analysis.
package proxy

import (
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Roles of the two backends; stats and metrics carry them beside the backend's name.
const (
	RoleStable = "stable"
	RoleCanary = "canary"
)

// DefaultReservoir is how many recent latency samples each backend keeps.
const DefaultReservoir = 4096

// Config configures a Proxy.
type Config struct {
	Stable, Canary *url.URL
	// StableName and CanaryName label the backends in stats and metrics (default "stable" and
	// "canary"), so Prometheus queries can name them as the pipeline does, e.g. blue and green.
	StableName, CanaryName string
	// Weight is the initial share of requests, in percent, sent to the canary.
	Weight int
	// Reservoir bounds the latency samples kept per backend (default DefaultReservoir).
	Reservoir int
	// Transport reaches the backends; default: http.DefaultTransport's settings with enough
	// idle connections per host for keep-alive under concurrency.
	Transport http.RoundTripper
	Logger    *slog.Logger
}

// Proxy is a weighted reverse proxy. It streams bodies both ways without buffering them and
// keeps connections to the backends alive.
type Proxy struct {
	weight   atomic.Int32
	stable   *backend
	canary   *backend
	registry *prometheus.Registry
	log      *slog.Logger
}

// New builds a Proxy from c.
func New(c Config) (*Proxy, error) {
	if c.Stable == nil || c.Canary == nil {
		return nil, errors.New("proxy: both a stable and a canary URL are needed")
	}
	if c.Weight < 0 || c.Weight > 100 {
		return nil, fmt.Errorf("proxy: initial weight %d: %w", c.Weight, ErrWeight)
	}
	if c.StableName == "" {
		c.StableName = RoleStable
	}
	if c.CanaryName == "" {
		c.CanaryName = RoleCanary
	}
	if c.StableName == c.CanaryName {
		return nil, fmt.Errorf("proxy: stable and canary are both named %q", c.StableName)
	}
	if c.Reservoir <= 0 {
		c.Reservoir = DefaultReservoir
	}
	if c.Transport == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConns = 1024
		t.MaxIdleConnsPerHost = 512
		c.Transport = t
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	p := &Proxy{registry: prometheus.NewRegistry(), log: c.Logger}
	p.weight.Store(int32(c.Weight))
	p.stable = newBackend(c.StableName, RoleStable, c.Stable, c.Reservoir, c.Transport, c.Logger)
	p.canary = newBackend(c.CanaryName, RoleCanary, c.Canary, c.Reservoir, c.Transport, c.Logger)
	if err := p.registerMetrics(); err != nil {
		return nil, fmt.Errorf("proxy: metrics: %w", err)
	}
	return p, nil
}

// SetWeight sets the share of requests, in percent, sent to the canary.
func (p *Proxy) SetWeight(w int) error {
	if w < 0 || w > 100 {
		return fmt.Errorf("set weight %d: %w", w, ErrWeight)
	}
	if old := p.weight.Swap(int32(w)); int(old) != w {
		p.log.Info("canary weight changed", "from", old, "to", w)
	}
	return nil
}

// Weight is the share of requests, in percent, sent to the canary.
func (p *Proxy) Weight() int { return int(p.weight.Load()) }

// ServeHTTP sends the request to the canary with probability weight/100, else to stable.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b := p.stable
	// Independent draws, not a rotating counter: a client whose own requests alternate
	// (page, then asset) must not end up pinned to one backend.
	if wt := int(p.weight.Load()); wt > 0 && rand.IntN(100) < wt {
		b = p.canary
	}
	b.serve(w, r)
}

// backend is one upstream with its counters.
type backend struct {
	name, role string
	url        *url.URL
	rp         *httputil.ReverseProxy

	requests, errors5xx, empty atomic.Int64
	latencies                  *ring
	histogram                  prometheus.Observer
}

func newBackend(name, role string, u *url.URL, reservoir int, t http.RoundTripper, log *slog.Logger) *backend {
	b := &backend{name: name, role: role, url: u, latencies: newRing(reservoir)}
	b.rp = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(u)
			pr.SetXForwarded()
		},
		Transport: t,
		// Flush every write at once: bodies stream through, nothing is held back.
		FlushInterval: -1,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if r.Context().Err() != nil {
				// The client gave up: nothing the backend did wrong, and nobody to answer.
				if rec, ok := w.(*recorder); ok {
					rec.clientGone = true
				}
				return
			}
			log.Warn("backend unreachable", "backend", name, "url", u.String(), "err", err)
			w.WriteHeader(http.StatusBadGateway)
		},
	}
	return b
}

func (b *backend) serve(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	// HTTP/1 servers otherwise read the rest of a request body before answering, which
	// holds back a response the backend streams while the client still uploads. HTTP/2
	// is full duplex already and refuses this; nothing to do then.
	_ = http.NewResponseController(w).EnableFullDuplex()
	rec := &recorder{ResponseWriter: w}
	b.rp.ServeHTTP(rec, r)
	d := time.Since(start).Seconds()
	// A request the client abandoned still counts, with how long it had waited (a slow
	// canary makes clients give up), but neither as an error nor as an empty answer.
	b.requests.Add(1)
	if rec.status() >= 500 && !rec.clientGone {
		b.errors5xx.Add(1)
	}
	if rec.null(r.Method) && !rec.clientGone {
		b.empty.Add(1)
	}
	b.latencies.add(d)
	if b.histogram != nil {
		b.histogram.Observe(d)
	}
}

// recorder notes the status and the body's first bytes on the way through.
type recorder struct {
	http.ResponseWriter
	code       int
	bytes      int64
	head       [4]byte
	clientGone bool
}

func (r *recorder) WriteHeader(code int) {
	if r.code == 0 && code >= 200 {
		r.code = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(p []byte) (int, error) {
	if r.code == 0 {
		r.code = http.StatusOK
	}
	if r.bytes < int64(len(r.head)) {
		copy(r.head[r.bytes:], p)
	}
	n, err := r.ResponseWriter.Write(p)
	r.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController (which ReverseProxy flushes through) reach the
// underlying writer.
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

func (r *recorder) status() int {
	if r.code == 0 {
		return http.StatusOK
	}
	return r.code
}

// null reports a response that should have had a body and had none, or whose body is the JSON
// literal null: the seeds' "null responses". A 5xx counts as an error, not also as null.
func (r *recorder) null(method string) bool {
	switch code := r.status(); {
	case method == http.MethodHead, code == http.StatusNoContent, code == http.StatusNotModified, code < 200, code >= 500:
		return false
	}
	return r.bytes == 0 || (r.bytes == 4 && string(r.head[:]) == "null")
}
