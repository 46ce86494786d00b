package router

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/sluice-ci/sluice/deploy/metrics"
	"github.com/sluice-ci/sluice/deploy/proxy"
)

// Builtin drives a `sluice router` over its admin API.
type Builtin struct {
	// Admin is the router's admin address, host:port or a URL.
	Admin  string
	Client *http.Client
}

// SetWeight sets the canary's share of traffic in percent.
func (b *Builtin) SetWeight(ctx context.Context, w int) error {
	if err := checkWeight(w); err != nil {
		return err
	}
	body, err := json.Marshal(proxy.WeightBody{Weight: w})
	if err != nil {
		return fmt.Errorf("encode weight: %w", err)
	}
	_, err = b.do(ctx, http.MethodPut, body)
	return err
}

// Weight reads the canary's share of traffic in percent.
func (b *Builtin) Weight(ctx context.Context) (int, error) {
	return b.do(ctx, http.MethodGet, nil)
}

func (b *Builtin) do(ctx context.Context, method string, body []byte) (int, error) {
	u := metrics.AdminURL(b.Admin) + "/weight"
	req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(body))
	if err != nil {
		return 0, fmt.Errorf("router %s: %w", u, err)
	}
	c := b.Client
	if c == nil {
		c = &http.Client{Timeout: 10 * time.Second}
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, fmt.Errorf("router: %w", err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if err != nil {
		return 0, fmt.Errorf("router %s %s: read: %w", method, u, err)
	}
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("router %s %s: %s: %s", method, u, resp.Status, strings.TrimSpace(string(data)))
	}
	var wb proxy.WeightBody
	if err := json.Unmarshal(data, &wb); err != nil {
		return 0, fmt.Errorf("router %s %s: decode: %w", method, u, err)
	}
	return wb.Weight, nil
}
