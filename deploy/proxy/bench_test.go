package proxy_test

import (
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/sluice-ci/sluice/internal/realtest"
)

func fetch(b *testing.B, c *http.Client, u string) {
	resp, err := c.Get(u)
	if err != nil {
		b.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
}

func benchClient() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = 256
	return &http.Client{Transport: t}
}

// BenchmarkAddedLatency alternates a direct request to the backend with one through the
// router (weight 50, both backends alike) and reports both latencies and their difference,
// measured in the same run on the same machine.
func BenchmarkAddedLatency(b *testing.B) {
	f := start(b, realtest.Fault{}, realtest.Fault{}, 50)
	c := benchClient()
	fetch(b, c, f.stable.URL)
	fetch(b, c, f.front.URL)
	var direct, proxied time.Duration
	for b.Loop() {
		t0 := time.Now()
		fetch(b, c, f.stable.URL)
		t1 := time.Now()
		fetch(b, c, f.front.URL)
		direct += t1.Sub(t0)
		proxied += time.Since(t1)
	}
	n := float64(b.N)
	b.ReportMetric(float64(direct.Microseconds())/n, "direct-µs/req")
	b.ReportMetric(float64(proxied.Microseconds())/n, "proxied-µs/req")
	b.ReportMetric(float64((proxied-direct).Microseconds())/n, "added-µs/req")
}

// BenchmarkThroughput runs concurrent clients straight at the backend and through the router
// and reports requests per second of each.
func BenchmarkThroughput(b *testing.B) {
	f := start(b, realtest.Fault{}, realtest.Fault{}, 50)
	for _, target := range []struct{ name, url string }{{"direct", f.stable.URL}, {"proxied", f.front.URL}} {
		b.Run(target.name, func(b *testing.B) {
			c := benchClient()
			b.SetParallelism(4)
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					fetch(b, c, target.url)
				}
			})
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "req/s")
		})
	}
}
