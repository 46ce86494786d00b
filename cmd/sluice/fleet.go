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
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluice-ci/sluice/coordinator"
	"github.com/sluice-ci/sluice/internal/auth"
	"github.com/sluice-ci/sluice/internal/bus"
	"github.com/sluice-ci/sluice/internal/lockfile"
	sluicev1 "github.com/sluice-ci/sluice/proto/sluice/v1"
	"github.com/sluice-ci/sluice/workers"
)

// httpShutdownTimeout bounds how long in-flight dashboard requests may hold up a shutdown.
const httpShutdownTimeout = 5 * time.Second

// fleetOptions configure the in-process fleet of `sluice dev` and `sluice demo`.
type fleetOptions struct {
	dataDir    string
	natsListen string // "127.0.0.1:-1": any free port
	httpAddr   string // "": no HTTP API; port 0: any free port
	// authDir is an auth directory from `sluice auth init`: the server runs its
	// configuration, and the coordinator and each kind's worker connect with their own
	// credentials. Empty: no authentication.
	authDir     string
	kinds       []sluicev1.StageKind
	pool        string
	concurrency int
	ackWait     time.Duration
	// secrets the workers grant stages; nil: none.
	secrets *workers.Secrets
}

// fleet is an embedded NATS server with a coordinator, workers and the HTTP API on it, all
// in this process. Each part runs in a goroutine the fleet owns; shutdown stops them in the
// reverse order of their dependencies and waits for each.
type fleet struct {
	log     *slog.Logger
	emb     *bus.Embedded
	conns   []*nats.Conn
	natsURL string
	httpURL string
	// lock keeps other fleets off the data directory until shutdown.
	lock *lockfile.Lock

	workers, coord, http []*part
	// stopTracing flushes the coordinator's spans; nil without tracing.
	stopTracing func()
	// exited receives every part's end, in whatever order they come.
	exited chan partEnd
	// stopOnce makes shutdown safe to call again: its first call's error is every call's.
	stopOnce sync.Once
	stopErr  error
}

// part is one goroutine of the fleet.
type part struct {
	name string
	stop context.CancelFunc
	done chan error
}

type partEnd struct {
	p   *part
	err error
}

// startFleet starts the parts in dependency order; on error it stops what it started.
func (a *app) startFleet(ctx context.Context, o fleetOptions) (_ *fleet, err error) {
	f := &fleet{log: a.log, exited: make(chan partEnd, 16)}
	defer func() {
		if err != nil {
			_ = f.shutdown()
		}
	}()
	names := a.names()
	cfg := bus.Config{Names: names, AckWait: o.ackWait}.WithDefaults()

	if err := os.MkdirAll(o.dataDir, 0o755); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	// Two servers on one JetStream store corrupt it: one fleet per data directory.
	if f.lock, err = lockfile.TryLock(filepath.Join(o.dataDir, "LOCK")); err != nil {
		if errors.Is(err, lockfile.ErrHeld) {
			return nil, fmt.Errorf("data directory %s is in use by another sluice fleet: %w; stop that one, or give this one its own --data", o.dataDir, err)
		}
		return nil, fmt.Errorf("data dir: %w", err)
	}
	var fleetAuth *auth.Fleet
	embedded := bus.EmbeddedOptions{DataDir: filepath.Join(o.dataDir, "jetstream"), Listen: o.natsListen, Logger: a.log}
	if o.authDir != "" {
		if fleetAuth, err = auth.LoadFleet(o.authDir); err != nil {
			return nil, fmt.Errorf("--auth %s: %w", o.authDir, err)
		}
		if fleetAuth.Trust.Prefix != names.Prefix {
			return nil, fmt.Errorf("--auth %s was made for prefix %q, not %q: pass --prefix %s", o.authDir, fleetAuth.Trust.Prefix, names.Prefix, fleetAuth.Trust.Prefix)
		}
		embedded.ConfigFile = fleetAuth.Layout.Config()
	}
	f.emb, err = bus.StartEmbedded(ctx, embedded)
	if err != nil {
		return nil, fmt.Errorf("start NATS on %s: %w", o.natsListen, err)
	}
	f.natsURL = f.emb.ClientURL()
	creds := func(r auth.Role) string {
		if fleetAuth == nil {
			return ""
		}
		return fleetAuth.Layout.Creds(r, auth.DefaultUser)
	}
	coordNC, err := f.connect(ctx, "sluice dev coordinator", creds(auth.RoleCoordinator))
	if err != nil {
		return nil, err
	}
	js, err := jetstream.New(coordNC)
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	// The coordinator provisions too, but clients may upload sources before it is up.
	if err := bus.Provision(ctx, js, cfg); err != nil {
		return nil, fmt.Errorf("provision streams and buckets: %w", err)
	}

	tp, stopTracing, err := tracingFromEnv(ctx)
	if err != nil {
		return nil, err
	}
	f.stopTracing = stopTracing
	coord, err := coordinator.New(coordNC, coordinator.Config{Names: names, Bus: cfg, Auth: fleetAuth, Logger: a.log, TracerProvider: tp})
	if err != nil {
		return nil, fmt.Errorf("coordinator: %w", err)
	}
	f.coord = append(f.coord, f.goRun(ctx, "coordinator", coord.Run))
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
		f.http = append(f.http, f.goRun(ctx, "HTTP API", func(ctx context.Context) error { return serveHTTP(ctx, srv, ln) }))
	}

	// Steps run as users of their own when this process may start them so; a development
	// fleet of an ordinary user runs them as that user, and says so.
	unsafe := os.Geteuid() != 0
	if unsafe && len(o.kinds) > 0 {
		fmt.Fprintf(a.stderr, "\nWARNING: this process is not root, so its workers run steps as its own user: a step can read\n         what you can. A fleet for code you do not trust runs `sluice worker` as root.\n\n")
	}
	// Task trees go where step users can reach them; the caches they share stay warm there
	// from one dev or demo fleet to the next.
	workDir := filepath.Join(os.TempDir(), "sluice", "work")

	// Without authentication one connection serves every kind; with it each kind's worker
	// connects with that kind's credentials, as workers on separate machines do.
	groups := [][]sluicev1.StageKind{o.kinds}
	if fleetAuth != nil {
		groups = nil
		for _, k := range o.kinds {
			groups = append(groups, []sluicev1.StageKind{k})
		}
	}
	for _, kinds := range groups {
		if len(kinds) == 0 {
			continue
		}
		nc := coordNC
		if fleetAuth != nil {
			if nc, err = f.connect(ctx, "sluice dev worker "+kinds[0].Slug(), creds(auth.WorkerRole(kinds[0]))); err != nil {
				return nil, err
			}
		}
		reg, err := workerRegistry(ctx, nc, names, kinds)
		if err != nil {
			return nil, err
		}
		w, err := workers.New(nc, workers.Config{
			Names:       names,
			Bus:         cfg,
			Kinds:       kinds,
			Pool:        o.pool,
			Concurrency: o.concurrency,
			CacheDir:    filepath.Join(o.dataDir, "cache"),
			WorkDir:     workDir,
			Logger:      a.log,
			Registry:    reg,
			Secrets:     o.secrets,

			UnsafeSharedUser: unsafe,
		})
		if err != nil {
			return nil, fmt.Errorf("worker: %w", err)
		}
		f.workers = append(f.workers, f.goRun(ctx, "worker "+kindSlugs(kinds), w.Run))
	}
	return f, nil
}

// workerRegistry is the handlers for kinds; the test and e2e kinds record timings in KV.
func workerRegistry(ctx context.Context, nc *nats.Conn, names bus.Names, kinds []sluicev1.StageKind) (*workers.Registry, error) {
	var timings jetstream.KeyValue
	for _, k := range kinds {
		if k != sluicev1.StageKind_STAGE_KIND_TEST && k != sluicev1.StageKind_STAGE_KIND_E2E || timings != nil {
			continue
		}
		js, err := jetstream.New(nc)
		if err != nil {
			return nil, fmt.Errorf("jetstream: %w", err)
		}
		if timings, err = js.KeyValue(ctx, names.TimingsBucket()); err != nil {
			return nil, fmt.Errorf("open %s (is the bus provisioned? start a coordinator or `sluice dev` first): %w", names.TimingsBucket(), err)
		}
	}
	return kindRegistry(timings), nil
}

func (f *fleet) connect(ctx context.Context, name, creds string) (*nats.Conn, error) {
	nc, err := bus.Connect(ctx, bus.ConnectOptions{URL: f.natsURL, Name: name, CredsFile: creds})
	if err != nil {
		return nil, err
	}
	f.conns = append(f.conns, nc)
	return nc, nil
}

// apiStartTimeout bounds the wait for the coordinator's run API at startup; recovering a
// large store takes a while.
const apiStartTimeout = 60 * time.Second

// awaitReady returns once the coordinator serves the run API, so the fleet is usable when
// startFleet returns; it ends early if a part stops.
func (f *fleet) awaitReady(ctx context.Context, coord *coordinator.Coordinator) error {
	ctx, cancel := context.WithTimeout(ctx, apiStartTimeout)
	defer cancel()
	select {
	case <-coord.Ready():
		return nil
	case <-ctx.Done():
		return fmt.Errorf("coordinator not up after %s: %w", apiStartTimeout, ctx.Err())
	case e := <-f.exited:
		return partStopped(e.p.name, e.err)
	}
}

// goRun runs fn in a goroutine with its own cancel, so the owner decides when each part stops
// (a signal cancels only the caller's ctx).
func (f *fleet) goRun(ctx context.Context, name string, fn func(context.Context) error) *part {
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	p := &part{name: name, stop: cancel, done: make(chan error, 1)}
	go func() {
		err := fn(ctx)
		p.done <- err
		select {
		case f.exited <- partEnd{p, err}:
		default:
		}
	}()
	return p
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
	case e := <-f.exited:
		return partStopped(e.p.name, e.err)
	}
}

func partStopped(part string, err error) error {
	if err == nil {
		err = errors.New("stopped without an error")
	}
	return fmt.Errorf("%s stopped: %w", part, err)
}

// shutdown stops the workers first (they finish or hand back their tasks while the
// coordinator still records results), then the HTTP API and the coordinator, then the
// connections and the server. It waits for each and returns what went wrong on the way;
// a second call returns the same.
func (f *fleet) shutdown() error {
	f.stopOnce.Do(func() { f.stopErr = f.stop() })
	return f.stopErr
}

func (f *fleet) stop() error {
	var errs []error
	for _, group := range [][]*part{f.workers, f.http, f.coord} {
		for _, p := range group {
			f.log.Debug("stopping", "part", p.name)
			p.stop()
		}
		for _, p := range group {
			if err := <-p.done; err != nil && !errors.Is(err, context.Canceled) {
				errs = append(errs, fmt.Errorf("%s: %w", p.name, err))
			}
		}
	}
	if f.stopTracing != nil {
		f.stopTracing()
	}
	for _, nc := range f.conns {
		nc.Close()
	}
	if f.emb != nil {
		f.emb.Shutdown()
	}
	if err := f.lock.Unlock(); err != nil {
		errs = append(errs, fmt.Errorf("unlock the data directory: %w", err))
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
