// Command app serves the example payments service on a local address, for the demo
// pipeline's staging gates and for trying contracts, journeys and load scripts by hand.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/sluice-ci/sluice/examples/app"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "app:", err)
		os.Exit(1)
	}
}

func run() error {
	listen := flag.String("listen", "127.0.0.1:18081", "address to serve on (host:port; port 0 picks a free one)")
	version := flag.String("version", "dev", "version reported by /healthz and the X-App-Version header")
	latency := flag.Duration("latency", 0, "latency added to every API request (fault injection)")
	errorRate := flag.Float64("error-rate", 0, "fraction of API requests answered 500, 0..1 (fault injection)")
	flag.Parse()
	if *errorRate < 0 || *errorRate > 1 {
		return fmt.Errorf("--error-rate %v: want a fraction between 0 and 1", *errorRate)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	l, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", *listen, err)
	}
	srv := &http.Server{
		Handler:           app.New(app.Options{Version: *version, Latency: *latency, ErrorRate: *errorRate}),
		ReadHeaderTimeout: 10 * time.Second,
	}
	slog.Info("serving the example app", "url", "http://"+l.Addr().String(), "version", *version)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shut down: %w", err)
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	return nil
}
