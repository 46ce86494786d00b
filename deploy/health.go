package deploy

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"
)

// healthPoll is how often WaitHealthy asks.
const healthPoll = 250 * time.Millisecond

// WaitHealthy polls the canary's health URL until it answers 2xx, for at most the health
// timeout; past it the error wraps ErrUnhealthy and says what the last answer was.
func (e *Engine) WaitHealthy(ctx context.Context) error {
	if e.HealthURL == "" {
		return fmt.Errorf("%w: no health url to wait for", ErrSpec)
	}
	ctx, cancel := context.WithTimeout(ctx, e.HealthTimeout)
	defer cancel()
	tick := time.NewTicker(healthPoll)
	defer tick.Stop()
	var last string
	for {
		ok, why := e.probe(ctx)
		if ok {
			e.logger().Info("canary healthy", "url", e.HealthURL)
			return nil
		}
		last = why
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s after %s (last answer: %s): %w", e.HealthURL, e.HealthTimeout, last, ErrUnhealthy)
		case <-tick.C:
		}
	}
}

func (e *Engine) probe(ctx context.Context) (bool, string) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.HealthURL, nil)
	if err != nil {
		return false, err.Error()
	}
	client := e.client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return false, err.Error()
	}
	defer resp.Body.Close()
	// Drain so the connection is reused between polls.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	return resp.StatusCode/100 == 2, resp.Status
}
