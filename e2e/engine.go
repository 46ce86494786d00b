package e2e

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chromedp/chromedp"
)

// Defaults of Config.
const (
	DefaultChromium    = "/usr/bin/chromium"
	DefaultStepTimeout = 10 * time.Second
	// ChromiumPackage is the Debian package that provides DefaultChromium.
	ChromiumPackage = "chromium"
)

// Config configures an Engine. Zero fields take defaults.
type Config struct {
	// Chromium is the browser binary; default $SLUICE_CHROMIUM, then DefaultChromium, then
	// chromium or chromium-browser on PATH.
	Chromium    string
	StepTimeout time.Duration // default timeout of a step; journeys and steps override it
	Logger      *slog.Logger
}

// Engine runs journeys on one headless Chromium, started on first use and reused: each
// journey gets a fresh incognito browser context, so no cookie or storage leaks between
// journeys. A browser that dies is replaced before the next journey. Run may be called from
// several goroutines; each journey runs in its own tab.
type Engine struct {
	c Config

	mu        sync.Mutex
	b         *browser // nil until started, and after a crash
	starts    int
	lastStart time.Duration
}

// browser is one running Chromium process.
type browser struct {
	ctx         context.Context // the first tab's context; done when the browser is gone
	cancel      context.CancelFunc
	allocCancel context.CancelFunc
	pid         int
	lost        <-chan struct{} // closed when the connection to the browser drops
	dead        atomic.Bool     // an action saw the process exit
}

// gone tells a browser that died or lost its connection. chromedp cancels ctx shortly after
// the connection drops; lost may already be closed when an action fails.
func (b *browser) gone() bool {
	if b.dead.Load() || b.ctx.Err() != nil {
		return true
	}
	select {
	case <-b.lost:
		return true
	default:
		return false
	}
}

// Stats are the engine's browser counters.
type Stats struct {
	Starts    int           // browsers started: 1 + restarts after crashes
	LastStart time.Duration // how long the last start took, up to a usable tab
}

// New checks the configuration and finds the browser; it starts nothing.
func New(c Config) (*Engine, error) {
	if c.StepTimeout <= 0 {
		c.StepTimeout = DefaultStepTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	path, err := FindChromium(c.Chromium)
	if err != nil {
		return nil, err
	}
	c.Chromium = path
	return &Engine{c: c}, nil
}

// FindChromium resolves the browser binary: explicit if set, else $SLUICE_CHROMIUM, else
// DefaultChromium, else chromium or chromium-browser on PATH. The error says how to install
// it.
func FindChromium(explicit string) (string, error) {
	if explicit == "" {
		explicit = os.Getenv("SLUICE_CHROMIUM")
	}
	if explicit != "" {
		p, err := exec.LookPath(explicit)
		if err != nil {
			return "", fmt.Errorf("%w at %s: %v", ErrNoBrowser, explicit, err)
		}
		return p, nil
	}
	for _, c := range []string{DefaultChromium, "chromium", "chromium-browser"} {
		if p, err := exec.LookPath(c); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("%w: not at %s nor chromium/chromium-browser on PATH; install the Debian package %q (apt-get install -y %s) or pass the binary with --chromium",
		ErrNoBrowser, DefaultChromium, ChromiumPackage, ChromiumPackage)
}

// Chromium is the browser binary the engine runs.
func (e *Engine) Chromium() string { return e.c.Chromium }

// Start starts the browser unless it runs. Run starts it by itself; Start lets a caller pay
// the start-up cost, and see its error, up front.
func (e *Engine) Start(ctx context.Context) error {
	_, err := e.browser(ctx)
	return err
}

// Stats returns the browser counters.
func (e *Engine) Stats() Stats {
	e.mu.Lock()
	defer e.mu.Unlock()
	return Stats{Starts: e.starts, LastStart: e.lastStart}
}

// BrowserPID is the process id of the running browser, 0 when none runs.
func (e *Engine) BrowserPID() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.b == nil || e.b.gone() {
		return 0
	}
	return e.b.pid
}

// Close stops the browser. The engine starts a new one if Run is called again.
func (e *Engine) Close() error {
	e.mu.Lock()
	b := e.b
	e.b = nil
	e.mu.Unlock()
	if b != nil {
		b.stop()
	}
	return nil
}

func (b *browser) stop() {
	b.cancel()
	b.allocCancel()
}

// browser returns the running browser, starting one if there is none or the last one died.
func (e *Engine) browser(ctx context.Context) (*browser, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.b != nil && !e.b.gone() {
		return e.b, nil
	}
	if e.b != nil {
		e.c.Logger.Warn("browser died; starting a new one", "pid", e.b.pid)
		e.b.stop()
		e.b = nil
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("start %s: %w", e.c.Chromium, err)
	}
	start := time.Now()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(e.c.Chromium),
		chromedp.WindowSize(1280, 800),
		chromedp.DisableGPU,
	)
	// Chromium refuses to run as root with its sandbox on; CI containers run as root.
	if os.Geteuid() == 0 {
		opts = append(opts, chromedp.NoSandbox)
	}
	// The browser outlives any one caller's context: it is the engine's, stopped by Close.
	allocCtx, allocCancel := chromedp.NewExecAllocator(context.Background(), opts...)
	bctx, cancel := chromedp.NewContext(allocCtx)
	started := make(chan error, 1)
	go func() { started <- chromedp.Do(bctx) }()
	select {
	case err := <-started:
		if err != nil {
			cancel()
			allocCancel()
			return nil, fmt.Errorf("start %s: %w", e.c.Chromium, err)
		}
	case <-ctx.Done():
		cancel()
		allocCancel()
		<-started
		return nil, fmt.Errorf("start %s: %w", e.c.Chromium, ctx.Err())
	}
	cb := chromedp.FromContext(bctx).Browser
	b := &browser{ctx: bctx, cancel: cancel, allocCancel: allocCancel, lost: cb.LostConnection}
	if p := cb.Process(); p != nil {
		b.pid = p.Pid
	}
	e.b = b
	e.starts++
	e.lastStart = time.Since(start)
	e.c.Logger.Debug("browser started", "path", e.c.Chromium, "pid", b.pid, "took", e.lastStart)
	return b, nil
}
