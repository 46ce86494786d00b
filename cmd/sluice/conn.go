package main

import (
	"context"
	"errors"
	"fmt"
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
}

// connect connects to the NATS server the global flags name. name is the client name the
// server's monitoring shows ("sluice run").
func (a *app) connect(ctx context.Context, name string) (*conn, error) {
	url := a.natsTarget()
	nc, err := bus.Connect(ctx, a.connectOptions(url, name))
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
	return &conn{url: url, nc: nc, js: js, names: names, api: coordinator.NewClient(nc, names)}, nil
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

// apiCtx bounds one run API call.
func apiCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, apiTimeout)
}
