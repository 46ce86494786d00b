package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// DefaultListen is where the embedded server listens when EmbeddedOptions.Listen is empty.
const DefaultListen = "127.0.0.1:4222"

// defaultReadyTimeout bounds how long StartEmbedded waits for the server to accept clients;
// recovering a large file store takes a while, so it is generous.
const defaultReadyTimeout = 30 * time.Second

// EmbeddedOptions configure an in-process nats-server with JetStream.
type EmbeddedOptions struct {
	DataDir    string       // JetStream file store; required unless ConfigFile sets store_dir
	Listen     string       // host:port; "127.0.0.1:-1" picks a free port; default DefaultListen
	Logger     *slog.Logger // server logs; default slog.Default()
	ConfigFile string       // optional nats-server config (accounts, auth, TLS); fields above override it

	// ServerName names the server; required to differ per node in a cluster.
	ServerName string
	// Cluster joins the server to a cluster of embedded servers (replication tests).
	Cluster *ClusterOptions
	// ReadyTimeout bounds the wait for the server to accept clients; default 30s.
	ReadyTimeout time.Duration
}

// ClusterOptions are the route settings of one cluster node.
type ClusterOptions struct {
	Name   string   // cluster name, the same on every node
	Listen string   // host:port for routes; port -1 picks a free port
	Routes []string // nats-route://host:port of the other nodes
}

// Embedded is a running in-process nats-server.
type Embedded struct {
	srv *server.Server
}

// StartEmbedded starts a nats-server with JetStream in this process and waits until it
// accepts clients. A DataDir reused after a restart keeps its streams.
func StartEmbedded(ctx context.Context, o EmbeddedOptions) (*Embedded, error) {
	opts := &server.Options{}
	if o.ConfigFile != "" {
		fileOpts, err := server.ProcessConfigFile(o.ConfigFile)
		if err != nil {
			return nil, fmt.Errorf("nats-server config %s: %w", o.ConfigFile, err)
		}
		opts = fileOpts
	}
	listen := o.Listen
	if listen == "" && o.ConfigFile == "" {
		listen = DefaultListen
	}
	if listen != "" {
		host, port, err := splitListen(listen)
		if err != nil {
			return nil, fmt.Errorf("embedded NATS listen address: %w", err)
		}
		opts.Host, opts.Port = host, port
	}
	if o.DataDir != "" {
		opts.StoreDir = o.DataDir
	}
	if opts.StoreDir == "" {
		return nil, errors.New("embedded NATS: a data directory is required for the JetStream file store")
	}
	if o.ServerName != "" {
		opts.ServerName = o.ServerName
	}
	if o.Cluster != nil {
		if err := clusterOpts(opts, o.Cluster); err != nil {
			return nil, err
		}
	}
	opts.JetStream = true
	// The host process owns signals; the server must not install its own handlers.
	opts.NoSigs = true

	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("embedded NATS: %w", err)
	}
	logger := o.Logger
	if logger == nil {
		logger = slog.Default()
	}
	sl := &serverLogger{l: logger.With("component", "nats-server"), fatal: make(chan string, 1)}
	srv.SetLoggerV2(sl, false, false, false)
	srv.Start()

	timeout := o.ReadyTimeout
	if timeout <= 0 {
		timeout = defaultReadyTimeout
	}
	if err := waitReady(ctx, srv, sl.fatal, timeout); err != nil {
		srv.Shutdown()
		srv.WaitForShutdown()
		return nil, err
	}
	return &Embedded{srv: srv}, nil
}

// waitReady waits in short slices so a cancelled ctx or a fatal server error (after which
// the server never listens) is noticed promptly.
func waitReady(ctx context.Context, srv *server.Server, fatal <-chan string, timeout time.Duration) error {
	const slice = 100 * time.Millisecond
	deadline := time.Now().Add(timeout)
	for !srv.ReadyForConnections(slice) {
		select {
		case msg := <-fatal:
			return fmt.Errorf("embedded NATS failed to start: %s", msg)
		case <-ctx.Done():
			return fmt.Errorf("embedded NATS not ready: %w", ctx.Err())
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("embedded NATS not ready for connections after %s (is the address in use?)", timeout)
		}
	}
	return nil
}

func splitListen(listen string) (string, int, error) {
	host, portStr, err := net.SplitHostPort(listen)
	if err != nil {
		return "", 0, fmt.Errorf("%q: %w", listen, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < -1 || port > 65535 {
		return "", 0, fmt.Errorf("%q: port must be a number from 0 to 65535, or -1 for any free port", listen)
	}
	return host, port, nil
}

func clusterOpts(opts *server.Options, c *ClusterOptions) error {
	if opts.ServerName == "" {
		return errors.New("embedded NATS cluster: ServerName is required on every node")
	}
	host, port, err := splitListen(c.Listen)
	if err != nil {
		return fmt.Errorf("embedded NATS cluster listen address: %w", err)
	}
	opts.Cluster.Name = c.Name
	opts.Cluster.Host, opts.Cluster.Port = host, port
	opts.Routes = opts.Routes[:0]
	for _, r := range c.Routes {
		u, err := url.Parse(r)
		if err != nil {
			return fmt.Errorf("embedded NATS cluster route %q: %w", r, err)
		}
		opts.Routes = append(opts.Routes, u)
	}
	return nil
}

// ClientURL is the nats:// URL clients connect to.
func (e *Embedded) ClientURL() string { return e.srv.ClientURL() }

// ClusterURL is the nats-route:// URL other nodes route to, or "" when not clustered.
func (e *Embedded) ClusterURL() string {
	addr := e.srv.ClusterAddr()
	if addr == nil {
		return ""
	}
	return "nats-route://" + addr.String()
}

// Server is the underlying server, for readiness checks and monitoring in tests.
func (e *Embedded) Server() *server.Server { return e.srv }

// Shutdown stops the server and waits until it has stopped and flushed its store.
func (e *Embedded) Shutdown() {
	e.srv.Shutdown()
	e.srv.WaitForShutdown()
}

// serverLogger routes the server's logs to slog. Notices (banner, "server is ready") are
// debug detail for a Sluice process; warnings and errors stay visible. The first fatal
// message goes to fatal: the server gives up starting after it instead of exiting.
type serverLogger struct {
	l     *slog.Logger
	fatal chan string
}

func (s *serverLogger) Noticef(format string, v ...any) { s.log(slog.LevelDebug, format, v) }
func (s *serverLogger) Warnf(format string, v ...any)   { s.log(slog.LevelWarn, format, v) }
func (s *serverLogger) Fatalf(format string, v ...any) {
	s.log(slog.LevelError, format, v)
	select {
	case s.fatal <- fmt.Sprintf(format, v...):
	default:
	}
}

func (s *serverLogger) Errorf(format string, v ...any) { s.log(slog.LevelError, format, v) }
func (s *serverLogger) Debugf(format string, v ...any) { s.log(slog.LevelDebug, format, v) }
func (s *serverLogger) Tracef(format string, v ...any) { s.log(slog.LevelDebug-4, format, v) }

func (s *serverLogger) log(level slog.Level, format string, v []any) {
	ctx := context.Background()
	if !s.l.Enabled(ctx, level) {
		return
	}
	s.l.Log(ctx, level, fmt.Sprintf(format, v...))
}
