package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluice-ci/sluice/deploy/proxy"
	exampleapp "github.com/sluice-ci/sluice/examples/app"
)

// demoTrafficEvery paces the demo's client: about 250 requests a second through the router.
const demoTrafficEvery = 4 * time.Millisecond

// demoEnv is where `sluice demo` ships the example app: a staging instance of the new
// version (green) for the staging gates, and production: blue (stable) and green (canary) on
// loopback behind a weighted router, with a client sending steady traffic through it and
// counting what it sees.
type demoEnv struct {
	stagingURL  string
	routerAdmin string
	canaryURL   string
	proxy       *proxy.Proxy

	sent, failed, green atomic.Int64

	servers []*http.Server
	stop    context.CancelFunc
	wg      sync.WaitGroup
}

// startDemoEnv starts the environment. A bad canary fails 5% of its API requests in
// production only: it passes staging, as such versions do.
func startDemoEnv(ctx context.Context, badCanary bool, log *slog.Logger) (_ *demoEnv, err error) {
	e := &demoEnv{}
	ctx, e.stop = context.WithCancel(ctx)
	defer func() {
		if err != nil {
			e.close()
		}
	}()
	green := exampleapp.Options{Version: "green"}
	if badCanary {
		green.ErrorRate = 0.05
	}
	stagingURL, err := e.serve(exampleapp.New(exampleapp.Options{Version: "green"}))
	if err != nil {
		return nil, err
	}
	e.stagingURL = stagingURL.String()
	blueURL, err := e.serve(exampleapp.New(exampleapp.Options{Version: "blue"}))
	if err != nil {
		return nil, err
	}
	greenURL, err := e.serve(exampleapp.New(green))
	if err != nil {
		return nil, err
	}
	e.canaryURL = greenURL.String()
	e.proxy, err = proxy.New(proxy.Config{Stable: blueURL, Canary: greenURL, StableName: "blue", CanaryName: "green", Logger: log})
	if err != nil {
		return nil, err
	}
	front, err := e.serve(e.proxy)
	if err != nil {
		return nil, err
	}
	admin, err := e.serve(e.proxy.AdminHandler())
	if err != nil {
		return nil, err
	}
	e.routerAdmin = admin.Host
	e.wg.Go(func() { e.traffic(ctx, front.String()+"/api/payments") })
	return e, nil
}

// serve serves h on a free loopback port.
func (e *demoEnv) serve(h http.Handler) (*url.URL, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("demo environment: %w", err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	e.servers = append(e.servers, srv)
	e.wg.Go(func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			slog.Warn("demo server", "err", err)
		}
	})
	return &url.URL{Scheme: "http", Host: ln.Addr().String()}, nil
}

func (e *demoEnv) traffic(ctx context.Context, target string) {
	client := &http.Client{Timeout: 5 * time.Second}
	tick := time.NewTicker(demoTrafficEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
		if err != nil {
			return
		}
		resp, err := client.Do(req)
		if ctx.Err() != nil {
			return
		}
		e.sent.Add(1)
		if err != nil {
			e.failed.Add(1)
			continue
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode >= 500 {
			e.failed.Add(1)
		}
		if resp.Header.Get(exampleapp.VersionHeader) == "green" {
			e.green.Add(1)
		}
	}
}

// vars are the pipeline variables that point its rollout at this environment.
func (e *demoEnv) vars() map[string]string {
	return map[string]string{"STAGING_URL": e.stagingURL, "ROUTER_ADMIN": e.routerAdmin, "CANARY_URL": e.canaryURL}
}

// summary is what the clients saw, in one line.
func (e *demoEnv) summary() string {
	sent := e.sent.Load()
	if sent == 0 {
		return "clients sent no requests"
	}
	return fmt.Sprintf("clients sent %d requests through the router: %d errors (%.2f%%), %d served by green; green now gets %d%%",
		sent, e.failed.Load(), 100*float64(e.failed.Load())/float64(sent), e.green.Load(), e.proxy.Weight())
}

func (e *demoEnv) close() {
	e.stop()
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, s := range e.servers {
		_ = s.Shutdown(shutdown)
	}
	e.wg.Wait()
}
