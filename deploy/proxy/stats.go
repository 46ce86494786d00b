package proxy

import (
	"sync"
)

// ring keeps the most recent latency samples of a backend. Every sample gets a sequence
// number, so a reader that remembers where it stopped reads exactly the samples of its own
// interval (or the most recent len(buf) of them when more arrived), and any number of readers
// share the ring without resetting it under each other.
type ring struct {
	mu  sync.Mutex
	buf []float64
	seq uint64 // samples recorded so far; the next one goes to buf[seq%len(buf)]
}

func newRing(n int) *ring { return &ring{buf: make([]float64, n)} }

func (r *ring) add(v float64) {
	r.mu.Lock()
	r.buf[r.seq%uint64(len(r.buf))] = v
	r.seq++
	r.mu.Unlock()
}

// since returns the samples recorded after sequence number from (oldest first, at most
// len(buf) of them) and the current sequence number.
func (r *ring) since(from uint64) ([]float64, uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if from >= r.seq {
		return nil, r.seq
	}
	n := uint64(len(r.buf))
	if r.seq-from > n {
		from = r.seq - n
	}
	out := make([]float64, 0, r.seq-from)
	for i := from; i < r.seq; i++ {
		out = append(out, r.buf[i%n])
	}
	return out, r.seq
}

func (r *ring) cursor() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.seq
}

// Stats is what the admin API's /stats returns.
type Stats struct {
	// Weight is the canary's share of requests in percent.
	Weight   int            `json:"canary_weight"`
	Backends []BackendStats `json:"backends"`
}

// BackendStats are one backend's counters since the router started, and the latency samples
// recorded after the cursor the reader passed.
type BackendStats struct {
	Name string `json:"name"`
	Role string `json:"role"`
	URL  string `json:"url"`
	// Requests, Errors (5xx, including a backend that could not be reached) and Empty
	// (responses without a body, or with the body null) are cumulative counts.
	Requests int64 `json:"requests"`
	Errors   int64 `json:"errors_5xx"`
	Empty    int64 `json:"empty_responses"`
	// Cursor is the sequence number of the last latency sample; pass it back to read only
	// later samples.
	Cursor uint64 `json:"cursor"`
	// Latencies are request durations in seconds after the reader's cursor, oldest first:
	// at most the reservoir's size, the most recent ones when more arrived.
	Latencies []float64 `json:"latencies_seconds,omitempty"`
}

// Backend returns the stats of the backend with the given role.
func (s Stats) Backend(role string) (BackendStats, bool) {
	for _, b := range s.Backends {
		if b.Role == role {
			return b, true
		}
	}
	return BackendStats{}, false
}

// Stats reads the counters. since maps a role to the cursor after which latency samples are
// wanted; a role missing from since gets no samples.
func (p *Proxy) Stats(since map[string]uint64) Stats {
	s := Stats{Weight: p.Weight()}
	for _, b := range []*backend{p.stable, p.canary} {
		bs := BackendStats{
			Name:     b.name,
			Role:     b.role,
			URL:      b.url.String(),
			Requests: b.requests.Load(),
			Errors:   b.errors5xx.Load(),
			Empty:    b.empty.Load(),
		}
		if from, ok := since[b.role]; ok {
			bs.Latencies, bs.Cursor = b.latencies.since(from)
		} else {
			bs.Cursor = b.latencies.cursor()
		}
		s.Backends = append(s.Backends, bs)
	}
	return s
}
