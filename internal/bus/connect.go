package bus

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// EnvURL is the environment variable that overrides the default server URL.
const EnvURL = "SLUICE_NATS"

// fallbackURL is where `sluice dev` listens by default.
const fallbackURL = "nats://127.0.0.1:4222"

// DefaultConnectTimeout bounds the dial and handshake of one server when
// ConnectOptions.Timeout is zero.
const DefaultConnectTimeout = 5 * time.Second

// reconnectBufSize is how many bytes of publishes are buffered while reconnecting, so a
// short server restart does not fail publishes that are already on their way.
const reconnectBufSize = 32 << 20

// DefaultURL is $SLUICE_NATS when set, else nats://127.0.0.1:4222.
func DefaultURL() string {
	if u := os.Getenv(EnvURL); u != "" {
		return u
	}
	return fallbackURL
}

// ConnectOptions say where and how to connect. Zero values take defaults.
type ConnectOptions struct {
	URL                    string // default: DefaultURL()
	CredsFile              string // NATS credentials file (JWT + nkey seed)
	TLSCert, TLSKey, TLSCA string // client certificate and key (both or neither), CA bundle
	Name                   string // client name shown by the server's monitoring
	Timeout                time.Duration
	// ErrorHandler receives asynchronous errors, permission violations among them; nil: none.
	ErrorHandler func(error)
}

// Connect connects to NATS and keeps reconnecting forever once connected. The first connect
// is bounded by ctx and o.Timeout; when no server answers, the error names the URL and wraps
// ErrUnreachable.
func Connect(ctx context.Context, o ConnectOptions) (*nats.Conn, error) {
	url := o.URL
	if url == "" {
		url = DefaultURL()
	}
	timeout := o.Timeout
	if timeout <= 0 {
		timeout = DefaultConnectTimeout
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%w at %s: %w", ErrUnreachable, url, err)
	}

	d := &dialer{timeout: timeout, ctx: ctx}
	opts := []nats.Option{
		nats.Timeout(timeout),
		nats.SetCustomDialer(d),
		nats.MaxReconnects(-1),
		nats.ReconnectBufSize(reconnectBufSize),
	}
	if o.Name != "" {
		opts = append(opts, nats.Name(o.Name))
	}
	if o.CredsFile != "" {
		if _, err := os.Stat(o.CredsFile); err != nil {
			return nil, fmt.Errorf("nats credentials: %w", err)
		}
		id, err := ReadIdentity(o.CredsFile)
		if err != nil {
			return nil, err
		}
		// The server lets each user subscribe only below its own inbox prefix.
		opts = append(opts, nats.UserCredentials(o.CredsFile), nats.CustomInboxPrefix(InboxPrefix(id.User)))
	}
	if o.ErrorHandler != nil {
		opts = append(opts, nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { o.ErrorHandler(err) }))
	}
	tlsOpt, err := tlsOption(o)
	if err != nil {
		return nil, err
	}
	if tlsOpt != nil {
		opts = append(opts, tlsOpt)
	}

	nc, err := nats.Connect(url, opts...)
	// Reconnects must not be bound to the caller's ctx, which may end right after this call.
	d.detach()
	if err != nil {
		if unreachable(ctx, err) {
			return nil, fmt.Errorf("%w at %s: %w", ErrUnreachable, url, err)
		}
		if errors.Is(err, nats.ErrAuthorization) || errors.Is(err, nats.ErrAuthExpired) || errors.Is(err, nats.ErrAuthRevoked) {
			hint := "pass --creds with a credentials file from `sluice auth init`"
			if o.CredsFile != "" {
				hint = "the server does not accept " + o.CredsFile + ": is it from this fleet's `sluice auth init`?"
			}
			return nil, fmt.Errorf("connect to NATS at %s: %w (%s)", url, err, hint)
		}
		return nil, fmt.Errorf("connect to NATS at %s: %w", url, err)
	}
	return nc, nil
}

// tlsOption builds the TLS configuration from the certificate files, or nil when none is set
// (the client still upgrades when the server requires TLS).
func tlsOption(o ConnectOptions) (nats.Option, error) {
	if o.TLSCert == "" && o.TLSKey == "" && o.TLSCA == "" {
		return nil, nil
	}
	if (o.TLSCert == "") != (o.TLSKey == "") {
		return nil, errors.New("nats TLS: a client certificate needs both --tls-cert and --tls-key")
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if o.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(o.TLSCert, o.TLSKey)
		if err != nil {
			return nil, fmt.Errorf("nats TLS client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	if o.TLSCA != "" {
		pem, err := os.ReadFile(o.TLSCA)
		if err != nil {
			return nil, fmt.Errorf("nats TLS CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("nats TLS CA %s: no PEM certificate found", o.TLSCA)
		}
		cfg.RootCAs = pool
	}
	return nats.Secure(cfg), nil
}

// unreachable tells a server that did not answer apart from one that refused us (bad
// credentials, TLS mismatch), which needs a different fix.
func unreachable(ctx context.Context, err error) bool {
	if tlsFailure(err) {
		return false
	}
	var netErr net.Error
	switch {
	case errors.Is(err, nats.ErrNoServers), errors.Is(err, nats.ErrTimeout),
		errors.Is(err, io.EOF), errors.As(err, &netErr), ctx.Err() != nil:
		return true
	}
	return false
}

// tlsFailure reports a server that answered but whose TLS handshake with us failed.
func tlsFailure(err error) bool {
	var (
		verify   *tls.CertificateVerificationError
		header   tls.RecordHeaderError
		unknown  x509.UnknownAuthorityError
		hostname x509.HostnameError
		invalid  x509.CertificateInvalidError
		op       *net.OpError
	)
	switch {
	case errors.Is(err, nats.ErrTLS), errors.Is(err, nats.ErrSecureConnRequired), errors.Is(err, nats.ErrSecureConnWanted),
		errors.As(err, &verify), errors.As(err, &header), errors.As(err, &unknown),
		errors.As(err, &hostname), errors.As(err, &invalid):
		return true
	case errors.As(err, &op):
		// A TLS alert from the server (e.g. "certificate required") arrives as this op.
		return op.Op == "remote error"
	}
	return false
}

// dialer dials with the caller's ctx during the first connect, and without it afterwards
// so reconnects outlive that ctx.
type dialer struct {
	timeout time.Duration
	mu      sync.Mutex
	ctx     context.Context
}

func (d *dialer) Dial(network, address string) (net.Conn, error) {
	d.mu.Lock()
	ctx := d.ctx
	d.mu.Unlock()
	nd := net.Dialer{Timeout: d.timeout}
	return nd.DialContext(ctx, network, address)
}

func (d *dialer) detach() {
	d.mu.Lock()
	d.ctx = context.Background()
	d.mu.Unlock()
}
