package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluice-ci/sluice/deploy/proxy"
)

// routerShutdownGrace bounds how long in-flight requests may finish after Ctrl-C.
const routerShutdownGrace = 10 * time.Second

func newRouterCmd(a *app) *cobra.Command {
	var (
		listen, admin          string
		stable, canary         string
		stableName, canaryName string
		weight, reservoir      int
	)
	cmd := &cobra.Command{
		Use:   "router",
		Short: "Run the built-in weighted traffic router for rollouts",
		Long: `Run a weighted reverse proxy in front of two versions of a service: --weight percent of
the requests arriving on --listen go to --canary, the rest to --stable. Bodies stream through
in both directions and connections to the backends are kept alive.

The admin address (--admin) serves:
  GET  /weight            {"canary_weight": W}
  PUT  /weight            {"canary_weight": W} sets the canary's share, 0-100
  GET  /stats             per-backend requests, 5xx, empty-body responses and latency samples
                          (?stable=CURSOR&canary=CURSOR for the samples after a cursor)
  GET  /metrics           the same as Prometheus metrics (sluice_router_*), labelled with the
                          backend's name (--stable-name, --canary-name) and role
  GET  /healthz

A rollout with 'router: {type: builtin, admin: ADDR}' drives the weight, and the 'builtin'
metrics provider reads the stats. The router needs no NATS.`,
		Example: `  sluice router --listen 127.0.0.1:8080 --stable http://127.0.0.1:18081 --canary http://127.0.0.1:18082 --admin 127.0.0.1:9091
  curl -X PUT -d '{"canary_weight": 10}' http://127.0.0.1:9091/weight`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if stable == "" || canary == "" {
				return usageErrorf(cmd, "--stable and --canary are both required")
			}
			su, err := backendURL(stable)
			if err != nil {
				return usageErrorf(cmd, "--stable %q: %v", stable, err)
			}
			cu, err := backendURL(canary)
			if err != nil {
				return usageErrorf(cmd, "--canary %q: %v", canary, err)
			}
			p, err := proxy.New(proxy.Config{
				Stable: su, Canary: cu, StableName: stableName, CanaryName: canaryName,
				Weight: weight, Reservoir: reservoir, Logger: a.log,
			})
			if err != nil {
				return usageError(cmd, err)
			}
			return serveRouter(cmd.Context(), a, p, listen, admin)
		},
	}
	f := cmd.Flags()
	f.StringVar(&listen, "listen", "127.0.0.1:8000", "address the proxied traffic arrives on")
	f.StringVar(&admin, "admin", "127.0.0.1:9091", "address of the admin API and /metrics (keep it private)")
	f.StringVar(&stable, "stable", "", "base URL of the stable version (required)")
	f.StringVar(&canary, "canary", "", "base URL of the canary version (required)")
	f.StringVar(&stableName, "stable-name", proxy.RoleStable, "the stable backend's name in stats and metrics (e.g. blue)")
	f.StringVar(&canaryName, "canary-name", proxy.RoleCanary, "the canary backend's name in stats and metrics (e.g. green)")
	f.IntVar(&weight, "weight", 0, "initial canary weight, 0-100")
	f.IntVar(&reservoir, "reservoir", proxy.DefaultReservoir, "latency samples kept per backend")
	return cmd
}

func backendURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil {
		return nil, err
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, errors.New("want an http:// or https:// URL with a host")
	}
	return u, nil
}

// serveRouter serves traffic and the admin API until ctx ends, then lets in-flight requests
// finish within routerShutdownGrace.
func serveRouter(ctx context.Context, a *app, p *proxy.Proxy, listen, admin string) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", listen)
	if err != nil {
		return fmt.Errorf("router: listen: %w", err)
	}
	aln, err := lc.Listen(ctx, "tcp", admin)
	if err != nil {
		ln.Close()
		return fmt.Errorf("router: admin listen: %w", err)
	}
	servers := []*http.Server{
		{Handler: p, ReadHeaderTimeout: 30 * time.Second},
		{Handler: p.AdminHandler(), ReadHeaderTimeout: 10 * time.Second},
	}
	a.note("router: traffic on http://%s, admin on http://%s (canary weight %d%%)", ln.Addr(), aln.Addr(), p.Weight())
	errs := make(chan error, len(servers))
	for i, l := range []net.Listener{ln, aln} {
		go func() { errs <- servers[i].Serve(l) }()
	}
	var first error
	received := 0
	select {
	case <-ctx.Done():
	case first = <-errs:
		received++
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), routerShutdownGrace)
	defer cancel()
	for _, s := range servers {
		if err := s.Shutdown(sctx); err != nil {
			a.log.Warn("router shutdown", "err", err)
		}
	}
	for ; received < len(servers); received++ {
		if err := <-errs; first == nil && !errors.Is(err, http.ErrServerClosed) {
			first = err
		}
	}
	if first != nil && !errors.Is(first, http.ErrServerClosed) {
		return fmt.Errorf("router: %w", first)
	}
	return nil
}
