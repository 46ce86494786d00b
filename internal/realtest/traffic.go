package realtest

import (
	"context"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Traffic is a client sending steady requests to a URL until stopped.
type Traffic struct {
	// Sent and Failed count requests, and answers that were 5xx or did not come.
	Sent, Failed atomic.Int64
	cancel       context.CancelFunc
	wg           sync.WaitGroup
}

// StartTraffic sends a GET to url every period from one goroutine, until Stop or the end of
// the test.
func StartTraffic(t testing.TB, url string, period time.Duration) *Traffic {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	tr := &Traffic{cancel: cancel}
	c := &http.Client{Timeout: 10 * time.Second}
	tr.wg.Go(func() {
		tick := time.NewTicker(period)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
			if err != nil {
				return
			}
			tr.Sent.Add(1)
			resp, err := c.Do(req)
			if err != nil {
				if ctx.Err() == nil {
					tr.Failed.Add(1)
				}
				continue
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode >= 500 {
				tr.Failed.Add(1)
			}
		}
	})
	t.Cleanup(tr.Stop)
	return tr
}

// Stop ends the traffic and waits for its goroutine.
func (tr *Traffic) Stop() {
	tr.cancel()
	tr.wg.Wait()
}
