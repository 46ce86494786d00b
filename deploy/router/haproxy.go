package router

import (
	"context"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"
)

// HAProxy drives the weights of two servers of a backend over HAProxy's runtime API (a
// `stats socket ... level admin`): no reload, no dropped connections.
type HAProxy struct {
	// Socket is the runtime API's unix socket.
	Socket string
	// Backend holds the Stable and Canary servers.
	Backend        string
	Stable, Canary string
}

// SetWeight gives the canary weight w and the stable server 100-w.
func (h *HAProxy) SetWeight(ctx context.Context, w int) error {
	if err := checkWeight(w); err != nil {
		return err
	}
	// The server that ends with the larger weight is set first, so the two weights never
	// both read zero in between (HAProxy would then refuse every request).
	first, second := [2]any{h.Canary, w}, [2]any{h.Stable, 100 - w}
	if w < 50 {
		first, second = second, first
	}
	for _, s := range [][2]any{first, second} {
		out, err := h.command(ctx, fmt.Sprintf("set server %s/%s weight %d", h.Backend, s[0], s[1]))
		if err != nil {
			return err
		}
		if out != "" {
			return fmt.Errorf("haproxy: set server %s/%s weight %d: %s", h.Backend, s[0], s[1], out)
		}
	}
	return nil
}

// Weight reads both servers' current weights back and returns the canary's share in percent.
func (h *HAProxy) Weight(ctx context.Context) (int, error) {
	stable, err := h.weight(ctx, h.Stable)
	if err != nil {
		return 0, err
	}
	canary, err := h.weight(ctx, h.Canary)
	if err != nil {
		return 0, err
	}
	return share(stable, canary)
}

// weight parses `get weight`'s "<current> (initial <initial>)".
func (h *HAProxy) weight(ctx context.Context, server string) (int, error) {
	out, err := h.command(ctx, fmt.Sprintf("get weight %s/%s", h.Backend, server))
	if err != nil {
		return 0, err
	}
	cur, _, _ := strings.Cut(out, " ")
	n, err := strconv.Atoi(cur)
	if err != nil {
		return 0, fmt.Errorf("haproxy: get weight %s/%s: %q: %w", h.Backend, server, out, ErrServerNotFound)
	}
	return n, nil
}

// command sends one line to the runtime API and returns its answer, trimmed.
func (h *HAProxy) command(ctx context.Context, line string) (string, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", h.Socket)
	if err != nil {
		return "", fmt.Errorf("haproxy runtime API %s: %w", h.Socket, err)
	}
	defer conn.Close()
	deadline := time.Now().Add(10 * time.Second)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	if err := conn.SetDeadline(deadline); err != nil {
		return "", fmt.Errorf("haproxy runtime API %s: %w", h.Socket, err)
	}
	if _, err := io.WriteString(conn, line+"\n"); err != nil {
		return "", fmt.Errorf("haproxy runtime API %s: %q: %w", h.Socket, line, err)
	}
	// Without "prompt" mode HAProxy answers one command and closes the connection.
	out, err := io.ReadAll(io.LimitReader(conn, 1<<16))
	if err != nil {
		return "", fmt.Errorf("haproxy runtime API %s: %q: %w", h.Socket, line, err)
	}
	return strings.TrimSpace(string(out)), nil
}
