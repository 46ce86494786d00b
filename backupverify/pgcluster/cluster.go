package pgcluster

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sluice-ci/sluice/internal/procgroup"
)

// Defaults of Options.
const (
	DefaultStartTimeout = 60 * time.Second
	// Superuser is the cluster's bootstrap superuser; its password is random per cluster.
	Superuser = "sluice"
)

const (
	// stopTimeout bounds a fast shutdown before the server is killed.
	stopTimeout = 30 * time.Second
	// bindAttempts: a free port can be taken by someone else between the probe and the
	// server's bind; the start is retried on another port.
	bindAttempts = 3
	pollInterval = 25 * time.Millisecond
	// logTail is how much of the server log an error quotes.
	logTail = 2000
)

// Options configure Start. Zero fields take defaults.
type Options struct {
	// Bin holds initdb and postgres; default FindBin("", ServerTools...).
	Bin Bin
	// Parent is where the cluster's directory is created; default os.TempDir(). When
	// this process is root, User must be able to reach it.
	Parent string
	// User is the operating-system user the server runs as when this process is root
	// (PostgreSQL refuses to run as root); default "postgres" when it exists, else
	// "nobody". Ignored when not root: the server runs as this process's user.
	User string
	// StartTimeout bounds initdb plus the server's start; default DefaultStartTimeout.
	StartTimeout time.Duration
}

// Cluster is a running throwaway PostgreSQL server, listening on 127.0.0.1 only (no unix
// socket), with password authentication for Superuser. Tuned for speed over durability
// (fsync off): its data does not outlive it. Close stops it and deletes its directory.
type Cluster struct {
	Dir      string // the cluster's directory: data/ and postgres.log
	Port     int
	Password string // of Superuser

	proc      *exec.Cmd
	exited    chan struct{} // closed when the server process has been waited for
	closeOnce sync.Once
	closeErr  error
}

// Start creates and starts a cluster. The server is this process's child, killed with it
// should this process die without Close (Linux).
func Start(ctx context.Context, o Options) (_ *Cluster, err error) {
	if o.Bin.Dir == "" {
		if o.Bin, err = FindBin("", ServerTools...); err != nil {
			return nil, err
		}
	} else if missing := missingTools(o.Bin.Dir, ServerTools); len(missing) > 0 {
		return nil, fmt.Errorf("%w: no %s in %s; %s", ErrNoBinaries, strings.Join(missing, ", "), o.Bin.Dir, InstallHint)
	}
	if o.Parent == "" {
		o.Parent = os.TempDir()
	}
	if o.StartTimeout <= 0 {
		o.StartTimeout = DefaultStartTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, o.StartTimeout)
	defer cancel()

	run, err := runAs(o.User)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp(o.Parent, "sluice-pg-")
	if err != nil {
		return nil, fmt.Errorf("%w: create its directory: %v", ErrStart, err)
	}
	c := &Cluster{Dir: dir}
	defer func() {
		if err != nil {
			_ = os.RemoveAll(dir)
		}
	}()
	if err := run.prepare(dir); err != nil {
		return nil, err
	}
	if c.Password, err = randomHex(16); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrStart, err)
	}
	if err := c.initdb(ctx, o.Bin, run); err != nil {
		return nil, err
	}
	for attempt := 1; ; attempt++ {
		err = c.start(ctx, o.Bin, run)
		if err == nil || !errors.Is(err, errPortTaken) || attempt == bindAttempts {
			break
		}
	}
	if err != nil {
		return nil, err
	}
	return c, nil
}

// initdb creates the data directory with a scram-sha-256 password for Superuser.
func (c *Cluster) initdb(ctx context.Context, bin Bin, run *runner) error {
	data := filepath.Join(c.Dir, "data")
	pwfile := filepath.Join(c.Dir, "pwfile")
	if err := run.mkdir(data); err != nil {
		return err
	}
	if err := run.writeFile(pwfile, []byte(c.Password+"\n")); err != nil {
		return err
	}
	defer os.Remove(pwfile)
	cmd := exec.CommandContext(ctx, bin.Path("initdb"), "-D", data, "-U", Superuser, "--pwfile", pwfile,
		"--auth=scram-sha-256", "--encoding=UTF8", "--locale=C", "--no-sync")
	cmd.Dir = c.Dir
	cmd.Env = serverEnv(bin)
	run.configure(cmd)
	cmd.WaitDelay = time.Second
	if out, err := cmd.CombinedOutput(); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("%w: initdb did not finish in time: %v", ErrStart, ctx.Err())
		}
		return fmt.Errorf("%w: initdb %s: %v: %s", ErrStart, data, err, tail(out))
	}
	return nil
}

var errPortTaken = errors.New("port taken")

// start runs the server on a free port and waits until it accepts connections.
func (c *Cluster) start(ctx context.Context, bin Bin, run *runner) error {
	port, err := freePort()
	if err != nil {
		return fmt.Errorf("%w: pick a free port: %v", ErrStart, err)
	}
	logPath := filepath.Join(c.Dir, "postgres.log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("%w: server log: %v", ErrStart, err)
	}
	defer logf.Close()
	args := []string{"-D", filepath.Join(c.Dir, "data")}
	for _, kv := range [][2]string{
		{"listen_addresses", "127.0.0.1"},
		{"port", strconv.Itoa(port)},
		// TCP only: a socket path under a deep temp dir can exceed the 107-byte limit.
		{"unix_socket_directories", ""},
		// Throwaway data: durability costs time and buys nothing.
		{"fsync", "off"},
		{"synchronous_commit", "off"},
		{"full_page_writes", "off"},
		{"wal_level", "minimal"},
		{"max_wal_senders", "0"},
		{"max_wal_size", "4GB"},
		{"checkpoint_timeout", "30min"},
		{"autovacuum", "off"},
		{"maintenance_work_mem", "256MB"},
		{"logging_collector", "off"},
	} {
		args = append(args, "-c", kv[0]+"="+kv[1])
	}
	cmd := exec.Command(bin.Path("postgres"), args...)
	cmd.Dir = c.Dir
	cmd.Env = serverEnv(bin)
	cmd.Stdout, cmd.Stderr = logf, logf
	run.configure(cmd)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("%w: run %s: %v", ErrStart, bin.Path("postgres"), err)
	}
	c.proc, c.Port = cmd, port
	c.exited = make(chan struct{})
	// Owned by the cluster: it ends when the server exits, which Close makes happen.
	go func() {
		_ = cmd.Wait()
		close(c.exited)
	}()
	if err := c.awaitReady(ctx); err != nil {
		c.stop()
		log, _ := os.ReadFile(logPath)
		if bytes.Contains(log, []byte("could not bind")) || bytes.Contains(log, []byte("Address already in use")) {
			return fmt.Errorf("%w: %w: %d", ErrStart, errPortTaken, port)
		}
		return fmt.Errorf("%w: %v; server log %s: %s", ErrStart, err, logPath, tail(log))
	}
	return nil
}

// awaitReady polls with real connections: the one readiness signal that cannot lie.
func (c *Cluster) awaitReady(ctx context.Context) error {
	cfg, err := pgx.ParseConfig(c.DSN("postgres"))
	if err != nil {
		return err
	}
	cfg.ConnectTimeout = time.Second
	for {
		conn, err := pgx.ConnectConfig(ctx, cfg)
		if err == nil {
			return conn.Close(ctx)
		}
		select {
		case <-c.exited:
			return fmt.Errorf("server exited during start (%v)", c.proc.ProcessState)
		case <-ctx.Done():
			return fmt.Errorf("server not ready on port %d: %w", c.Port, ctx.Err())
		case <-time.After(pollInterval):
		}
	}
}

// DSN is the URL of database on the cluster, as Superuser.
func (c *Cluster) DSN(database string) string {
	u := url.URL{
		Scheme: "postgres", User: url.UserPassword(Superuser, c.Password),
		Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(c.Port)), Path: "/" + database,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

// CreateDatabase creates an empty database (UTF8, C locale, from template0).
func (c *Cluster) CreateDatabase(ctx context.Context, name string) error {
	conn, err := pgx.Connect(ctx, c.DSN("postgres"))
	if err != nil {
		return fmt.Errorf("connect to the throwaway cluster: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	q := "CREATE DATABASE " + pgx.Identifier{name}.Sanitize() + " TEMPLATE template0 ENCODING 'UTF8' LOCALE 'C'"
	if _, err := conn.Exec(ctx, q); err != nil {
		return fmt.Errorf("create database %s on the throwaway cluster: %w", name, err)
	}
	return nil
}

// Close stops the server (fast shutdown, killed after 30 s) and removes the cluster's
// directory. It is safe to call more than once.
func (c *Cluster) Close() error {
	c.closeOnce.Do(func() {
		c.stop()
		if err := os.RemoveAll(c.Dir); err != nil {
			c.closeErr = fmt.Errorf("remove throwaway cluster %s: %w", c.Dir, err)
		}
	})
	return c.closeErr
}

// stop ends the server process and waits for it.
func (c *Cluster) stop() {
	if c.proc == nil {
		return
	}
	// SIGINT is PostgreSQL's fast shutdown: sessions are ended, no waiting for clients.
	_ = c.proc.Process.Signal(syscall.SIGINT)
	select {
	case <-c.exited:
		return
	case <-time.After(stopTimeout):
	}
	// The server leads its own process group: kill it and every backend.
	_ = procgroup.Kill(c.proc)
	<-c.exited
}

// serverEnv is the whole environment of initdb and postgres: nothing of ours leaks in.
func serverEnv(bin Bin) []string {
	return []string{"PATH=" + bin.Dir + ":/usr/bin:/bin", "LC_ALL=C", "LANG=C"}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	port := l.Addr().(*net.TCPAddr).Port
	return port, l.Close()
}

func randomHex(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("random password: %w", err)
	}
	return hex.EncodeToString(b), nil
}

func tail(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > logTail {
		s = "..." + s[len(s)-logTail:]
	}
	return s
}
