package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluice-ci/sluice/coordinator"
	"github.com/sluice-ci/sluice/internal/bus"
)

// apiTimeout bounds one call of the run API, so a coordinator that is up but stuck does not
// hang a command forever.
const apiTimeout = 15 * time.Second

// conn is a client connection to a fleet.
type conn struct {
	url   string
	nc    *nats.Conn
	js    jetstream.JetStream
	names bus.Names
	api   *coordinator.Client
	// denied ends, with the server's permission error as its cause, when the server refuses
	// something this connection sent: a refused request never gets an answer, so waiting
	// for one would only end in a timeout.
	denied context.Context
}

// connect connects to the NATS server the global flags name, with --creds. name is the
// client name the server's monitoring shows ("sluice run").
func (a *app) connect(ctx context.Context, name string) (*conn, error) {
	return a.connectAs(ctx, name, a.creds)
}

// connectAs is connect with the credentials file creds ("" for none).
func (a *app) connectAs(ctx context.Context, name, creds string) (*conn, error) {
	url := a.natsTarget()
	o := a.connectOptions(url, name)
	o.CredsFile = creds
	denied, deny := context.WithCancelCause(context.Background())
	o.ErrorHandler = func(err error) {
		if errors.Is(err, nats.ErrPermissionViolation) {
			deny(err)
		}
	}
	nc, err := bus.Connect(ctx, o)
	if err != nil {
		if errors.Is(err, bus.ErrUnreachable) {
			return nil, fmt.Errorf("%w; start a fleet with `sluice dev` or pass --nats", err)
		}
		return nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("jetstream on %s: %w", url, err)
	}
	names := a.names()
	return &conn{url: url, nc: nc, js: js, names: names, api: coordinator.NewClient(nc, names), denied: denied}, nil
}

// errDenied: the server refused what the command asked, for the credentials it used.
var errDenied = errors.New("not allowed")

// bind returns ctx, ended also when the server refuses something of this connection.
func (c *conn) bind(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(ctx)
	stop := context.AfterFunc(c.denied, func() { cancel(context.Cause(c.denied)) })
	return ctx, func() {
		stop()
		cancel(nil)
	}
}

// apiCtx bounds one run API call, and ends it when the server refuses it.
func (c *conn) apiCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := c.bind(ctx)
	tctx, tcancel := context.WithTimeout(ctx, apiTimeout)
	return tctx, func() {
		tcancel()
		cancel()
	}
}

// explain turns the error of an operation on a bound ctx into the server's refusal, when
// that is why it ended.
func (c *conn) explain(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	if cause := context.Cause(ctx); errors.Is(cause, nats.ErrPermissionViolation) {
		return fmt.Errorf("%w: the server refused it to %s (%v); use credentials of a role that may (see `sluice auth --help`)",
			errDenied, c.api.Identity().Principal(), strings.TrimPrefix(cause.Error(), "nats: permissions violation: "))
	}
	return err
}

func (a *app) connectOptions(url, name string) bus.ConnectOptions {
	return bus.ConnectOptions{
		URL:       url,
		CredsFile: a.creds,
		TLSCert:   a.tlsCert,
		TLSKey:    a.tlsKey,
		TLSCA:     a.tlsCA,
		Name:      name,
	}
}

func (c *conn) Close() { c.nc.Close() }

// warnUnauthenticated says loudly that a coordinator or worker runs on a server that lets
// anyone act as anyone, unless that server is on this machine's loopback (development).
func (a *app) warnUnauthenticated(c *conn) {
	if c.nc.AuthRequired() || loopbackURL(c.nc.ConnectedUrl()) {
		return
	}
	fmt.Fprintf(a.stderr, `
WARNING: %s does not authenticate its clients. Anyone who can reach it can publish
         results that pass stages, approve rollouts and read every secret a task carries.
         Run the fleet with credentials: sluice auth init --out DIR, then nats-server -c
         DIR/nats-server.conf (or sluice dev --auth DIR) and --auth DIR / --creds here.

`, c.nc.ConnectedUrl())
	a.log.Warn("the NATS server does not authenticate clients", "url", c.nc.ConnectedUrl())
}

// loopbackURL reports whether a nats:// URL points at this machine's loopback.
func loopbackURL(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil {
		return false
	}
	if u.Hostname() == "localhost" {
		return true
	}
	ip := net.ParseIP(u.Hostname())
	return ip != nil && ip.IsLoopback()
}
