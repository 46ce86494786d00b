// Package realtest starts the real parts the deploy tests run against: backends on loopback
// with set faults, and nginx, HAProxy and Prometheus processes with their configuration in a
// test's temporary directory on free loopback ports (never the machine's own services).
// Under CI=true a missing binary fails the test; elsewhere it skips it, loudly either way.
package realtest

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-ci/sluice/internal/procgroup"
)

// Fault makes a test backend misbehave on a share of its requests.
type Fault struct {
	// ErrorEvery makes every n-th request answer 500.
	ErrorEvery int
	// EmptyEvery makes every n-th request answer 200 with no body.
	EmptyEvery int
	// Delay is added to every request.
	Delay time.Duration
}

// Backend is an HTTP server on loopback that answers its name, with a Fault.
type Backend struct {
	*httptest.Server
	Name string
	// Hits counts requests; Conns counts new connections (keep-alive makes it small).
	Hits, Conns atomic.Int64
}

// StartBackend starts a backend that answers "<name>\n", closed when the test ends.
func StartBackend(t testing.TB, name string, f Fault) *Backend {
	t.Helper()
	b := &Backend{Name: name}
	b.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := b.Hits.Add(1)
		if f.Delay > 0 {
			select {
			case <-time.After(f.Delay):
			case <-r.Context().Done():
				return
			}
		}
		w.Header().Set("X-Backend", name)
		switch {
		case f.ErrorEvery > 0 && n%int64(f.ErrorEvery) == 0:
			w.WriteHeader(http.StatusInternalServerError)
			fmt.Fprintln(w, "injected failure")
		case f.EmptyEvery > 0 && n%int64(f.EmptyEvery) == 0:
			w.WriteHeader(http.StatusOK)
		default:
			fmt.Fprintln(w, name)
		}
	}))
	b.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			b.Conns.Add(1)
		}
	}
	b.Start()
	t.Cleanup(b.Close)
	return b
}

// Port is the backend's port.
func (b *Backend) Port() int { return b.Listener.Addr().(*net.TCPAddr).Port }

// Binary finds a real binary (also in /usr/sbin and /sbin, where Debian puts nginx and
// haproxy, often off a non-root PATH).
func Binary(t testing.TB, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/local/sbin"} {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	msg := fmt.Sprintf("real %s not found on PATH or in /usr/sbin: install Debian's %s package (.ci/run does)", name, name)
	if strings.EqualFold(os.Getenv("CI"), "true") {
		t.Fatalf("%s: %s", pkgOf(t), msg)
	}
	t.Skip("SKIPPED: " + msg)
	return ""
}

// pkgOf names the failing test's package for the CI log.
func pkgOf(t testing.TB) string {
	wd, err := os.Getwd()
	if err != nil {
		return t.Name()
	}
	return "package " + filepath.Base(filepath.Dir(wd)) + "/" + filepath.Base(wd) + " (" + t.Name() + ")"
}

// FreePort returns a loopback port that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Process is a real server started by a test.
type Process struct {
	Cmd  *exec.Cmd
	Dir  string
	Log  string
	done chan struct{}
}

// start runs bin with args, output to a log file in dir, and stops it (SIGTERM, then SIGKILL)
// when the test ends.
func start(t testing.TB, dir, bin string, args ...string) *Process {
	t.Helper()
	logPath := filepath.Join(dir, filepath.Base(bin)+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own process group, so stopping it reaches its workers too.
	procgroup.Set(cmd)
	if err := cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("start %s: %v", bin, err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(done)
	}()
	t.Cleanup(func() { procgroup.Stop(cmd, syscall.SIGTERM, done, 10*time.Second) })
	return &Process{Cmd: cmd, Dir: dir, Log: logPath, done: done}
}

// Tail is the end of the process's log, for failure messages.
func (p *Process) Tail() string {
	data, _ := os.ReadFile(p.Log)
	if len(data) > 2000 {
		data = data[len(data)-2000:]
	}
	return string(data)
}

// waitFor polls ok until it holds, failing the test after a generous bound: a server that
// does not come up in 30 s is broken, not slow.
func waitFor(t testing.TB, what string, p *Process, ok func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for !ok() {
		select {
		case <-p.done:
			t.Fatalf("%s exited: %s", what, p.Tail())
		case <-ctx.Done():
			t.Fatalf("%s not ready after 30s: %s", what, p.Tail())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func dialable(addr string) func() bool {
	return func() bool {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
		}
		return err == nil
	}
}

func writeFile(t testing.TB, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

// Addr is a loopback address on port.
func Addr(port int) string { return "127.0.0.1:" + strconv.Itoa(port) }
