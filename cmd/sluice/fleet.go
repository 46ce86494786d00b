package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluice-ci/sluice/coordinator"
	"github.com/sluice-ci/sluice/internal/bus"
	sluicev1 "github.com/sluice-ci/sluice/proto/sluice/v1"
	"github.com/sluice-ci/sluice/workers"
)

// httpShutdownTimeout bounds how long in-flight dashboard requests may hold up a shutdown.
const httpShutdownTimeout = 5 * time.Second

// fleetOptions configure the in-process fleet of `sluice dev` and `sluice demo`.
type fleetOptions struct {
	dataDir     string
	natsListen  string // "127.0.0.1:-1": any free port
	httpAddr    string // "": no HTTP API; port 0: any free port
	apiToken    string
	kinds       []sluicev1.StageKind
	pool        string
	concurrency int
	ackWait     time.Duration
}

// fleet is an embedded NATS server with a coordinator, a worker and the HTTP API on it, all
// in this process. Each part runs in a goroutine the fleet owns; shutdown stops them in the
// reverse order of their dependencies and waits for each.
type fleet struct {
	log     *slog.Logger
	emb     *bus.Embedded
	nc      *nats.Conn
	natsURL string
	httpURL string

	stopWorker, stopCoord, stopHTTP context.CancelFunc
	workerDone, coordDone, httpDone chan error
}

// startFleet starts the parts in dependency order; on error it stops what it started.
func (a *app) startFleet(ctx context.Context, o fleetOptions) (_ *fleet, err error) {
	f := &fleet{log: a.log}
	defer func() {
		if err != nil {
			f.shutdown()
		}
	}()
	names := a.names()
	cfg := bus.Config{Names: names, AckWait: o.ackWait}.WithDefaults()

	if err := os.MkdirAll(o.dataDir, 0o755); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	f.emb, err = bus.StartEmbedded(ctx, bus.EmbeddedOptions{
		DataDir: filepath.Join(o.dataDir, "jetstream"),
		Listen:  o.natsListen,
		Logger:  a.log,
	})
	if err != nil {
		return nil, fmt.Errorf("start NATS on %s: %w", o.natsListen, err)
	}
	f.natsURL = f.emb.ClientURL()
	f.nc, err = bus.Connect(ctx, bus.ConnectOptions{URL: f.natsURL, Name: "sluice dev"})
	if err != nil {
		return nil, err
	}
	js, err := jetstream.New(f.nc)
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	// The coordinator provisions too, but clients may upload sources before it is up.
	if err := bus.Provision(ctx, js, cfg); err != nil {
		return nil, fmt.Errorf("provision streams and buckets: %w", err)
	}
	timings, err := js.KeyValue(ctx, names.TimingsBucket())
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", names.TimingsBucket(), err)
	}

	coord, err := coordinator.New(f.nc, coordinator.Config{Names: names, Bus: cfg, APIToken: o.apiToken, Logger: a.log})
	if err != nil {
		return nil, fmt.Errorf("coordinator: %w", err)
	}
	f.stopCoord, f.coordDone = goRun(ctx, coord.Run)
	if err := f.awaitReady(ctx, coord); err != nil {
		return nil, err
	}

	if o.httpAddr != "" {
		ln, err := net.Listen("tcp", o.httpAddr)
		if err != nil {
			return nil, fmt.Errorf("HTTP API: listen on %s (pass another --http, or --http '' for none): %w", o.httpAddr, err)
		}
		f.httpURL = "http://" + ln.Addr().String() + "/"
		srv := &http.Server{Handler: coord.Handler(), ReadHeaderTimeout: 10 * time.Second}
		f.stopHTTP, f.httpDone = goRun(ctx, func(ctx context.Context) error { return serveHTTP(ctx, srv, ln) })
	}

	if len(o.kinds) > 0 {
		w, err := workers.New(f.nc, workers.Config{
			Names:       names,
			Bus:         cfg,
			Kinds:       o.kinds,
			Pool:        o.pool,
			Concurrency: o.concurrency,
			CacheDir:    filepath.Join(o.dataDir, "cache"),
			WorkDir:     filepath.Join(o.dataDir, "work"),
			Logger:      a.log,
			Registry:    kindRegistry(timings),
		})
		if err != nil {
			return nil, fmt.Errorf("worker: %w", err)
		}
		f.stopWorker, f.workerDone = goRun(ctx, w.Run)
	}
	return f, nil
}

// apiStartTimeout bounds the wait for the coordinator's run API at startup; recovering a
// large store takes a while.
const apiStartTimeout = 60 * time.Second

// awaitReady returns once the coordinator serves the run API, so the fleet is usable when
// startFleet returns; it ends early if the coordinator stops.
func (f *fleet) awaitReady(ctx context.Context, coord *coordinator.Coordinator) error {
	ctx, cancel := context.WithTimeout(ctx, apiStartTimeout)
	defer cancel()
	select {
	case <-coord.Ready():
		return nil
	case <-ctx.Done():
		return fmt.Errorf("coordinator not up after %s: %w", apiStartTimeout, ctx.Err())
	case err := <-f.coordDone:
		f.coordDone = closedWith(err)
		return partStopped("coordinator", err)
	}
}

// goRun runs fn in a goroutine with its own cancel, so the owner decides when each part stops
// (a signal cancels only the caller's ctx). done receives fn's result once.
func goRun(ctx context.Context, fn func(context.Context) error) (context.CancelFunc, chan error) {
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan error, 1)
	go func() { done <- fn(ctx) }()
	return cancel, done
}

func serveHTTP(ctx context.Context, srv *http.Server, ln net.Listener) error {
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case err := <-done:
		return fmt.Errorf("HTTP API: %w", err)
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), httpShutdownTimeout)
		defer cancel()
		err := srv.Shutdown(sctx)
		<-done
		if err != nil {
			return fmt.Errorf("HTTP API shutdown: %w", err)
		}
		return nil
	}
}

// wait blocks until ctx ends (a signal: nil) or a part stops by itself (its error).
func (f *fleet) wait(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return nil
	case err := <-f.coordDone:
		f.coordDone = closedWith(err)
		return partStopped("coordinator", err)
	case err := <-f.workerDone:
		f.workerDone = closedWith(err)
		return partStopped("worker", err)
	case err := <-f.httpDone:
		f.httpDone = closedWith(err)
		return partStopped("HTTP API", err)
	}
}

func partStopped(part string, err error) error {
	if err == nil {
		err = errors.New("stopped without an error")
	}
	return fmt.Errorf("%s stopped: %w", part, err)
}

// closedWith is a done channel that already holds err, for a part whose result was taken.
func closedWith(err error) chan error {
	ch := make(chan error, 1)
	ch <- err
	return ch
}

// shutdown stops the workers first (they finish or hand back their tasks while the
// coordinator still records results), then the HTTP API and the coordinator, then the
// connection and the server. It waits for each and returns what went wrong on the way.
func (f *fleet) shutdown() error {
	var errs []error
	stop := func(name string, cancel context.CancelFunc, done chan error) {
		if cancel == nil {
			return
		}
		f.log.Debug("stopping", "part", name)
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		}
	}
	stop("worker", f.stopWorker, f.workerDone)
	stop("HTTP API", f.stopHTTP, f.httpDone)
	stop("coordinator", f.stopCoord, f.coordDone)
	if f.nc != nil {
		f.nc.Close()
	}
	if f.emb != nil {
		f.emb.Shutdown()
	}
	return errors.Join(errs...)
}

// parseKinds reads --workers/--kinds: "all", "none" or a comma-separated list of kinds.
func parseKinds(s string) ([]sluicev1.StageKind, error) {
	switch strings.TrimSpace(s) {
	case "all":
		return sluicev1.AllKinds(), nil
	case "none", "":
		return nil, nil
	}
	var kinds []sluicev1.StageKind
	seen := map[sluicev1.StageKind]bool{}
	for _, part := range strings.Split(s, ",") {
		k, err := sluicev1.ParseStageKind(strings.TrimSpace(part))
		if err != nil {
			return nil, err
		}
		if !seen[k] {
			seen[k] = true
			kinds = append(kinds, k)
		}
	}
	return kinds, nil
}

func kindSlugs(kinds []sluicev1.StageKind) string {
	if len(kinds) == 0 {
		return "none"
	}
	s := make([]string, len(kinds))
	for i, k := range kinds {
		s[i] = k.Slug()
	}
	return strings.Join(s, ", ")
}
