// Package bustest starts real in-process NATS servers for tests: one server, or a cluster
// for replication tests, each on random ports with a per-test data directory.
package bustest

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluice-ci/sluice/internal/auth"
	"github.com/sluice-ci/sluice/internal/bus"
)

// clusterReadyTimeout bounds the wait for a JetStream meta leader; elections take a few
// seconds on a loaded 2-core machine.
const clusterReadyTimeout = 30 * time.Second

// Logger discards server logs, which would drown test output.
func Logger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// Server starts an embedded server with a fresh data dir; it stops when the test ends.
func Server(t testing.TB) *bus.Embedded {
	t.Helper()
	e, err := bus.StartEmbedded(t.Context(), bus.EmbeddedOptions{
		DataDir: t.TempDir(), Listen: "127.0.0.1:-1", Logger: Logger(),
	})
	if err != nil {
		t.Fatalf("start embedded NATS: %v", err)
	}
	t.Cleanup(e.Shutdown)
	return e
}

// Connect connects to url; the connection closes when the test ends.
func Connect(t testing.TB, url string) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := bus.Connect(t.Context(), bus.ConnectOptions{URL: url, Name: t.Name()})
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("jetstream: %v", err)
	}
	return nc, js
}

// Env is a provisioned server and a connection to it.
type Env struct {
	Server *bus.Embedded
	NC     *nats.Conn
	JS     jetstream.JetStream
	Config bus.Config // with defaults applied
}

// Start starts a server, connects and provisions it with c (zero value: defaults).
func Start(t testing.TB, c bus.Config) *Env {
	t.Helper()
	e := Server(t)
	nc, js := Connect(t, e.ClientURL())
	c = c.WithDefaults()
	if err := bus.Provision(t.Context(), js, c); err != nil {
		t.Fatalf("provision: %v", err)
	}
	return &Env{Server: e, NC: nc, JS: js, Config: c}
}

// Cluster starts n clustered servers and waits until JetStream has a meta leader. Nodes
// stop when the test ends.
func Cluster(t testing.TB, n int) []*bus.Embedded {
	t.Helper()
	if n < 1 {
		t.Fatalf("cluster of %d nodes", n)
	}
	// JetStream clustering needs every node's routes configured up front, so the route ports
	// are chosen before any node starts; each node ignores its route to itself.
	addrs := make([]string, n)
	routes := make([]string, n)
	for i := range n {
		addrs[i] = freeAddr(t)
		routes[i] = "nats-route://" + addrs[i]
	}
	var nodes []*bus.Embedded
	for i := range n {
		co := &bus.ClusterOptions{Name: "sluice-test", Listen: addrs[i], Routes: routes}
		e, err := bus.StartEmbedded(t.Context(), bus.EmbeddedOptions{
			DataDir: t.TempDir(), Listen: "127.0.0.1:-1", Logger: Logger(),
			ServerName: fmt.Sprintf("node-%d", i), Cluster: co,
		})
		if err != nil {
			t.Fatalf("start cluster node %d: %v", i, err)
		}
		t.Cleanup(e.Shutdown)
		nodes = append(nodes, e)
	}
	waitMetaLeader(t, nodes)
	return nodes
}

// freeAddr returns a loopback address nothing listens on at the moment.
func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("pick a free port: %v", err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatalf("pick a free port: %v", err)
	}
	return addr
}

// waitMetaLeader waits for the election: the server offers no notification for it.
func waitMetaLeader(t testing.TB, nodes []*bus.Embedded) {
	t.Helper()
	deadline := time.Now().Add(clusterReadyTimeout)
	for time.Now().Before(deadline) {
		for _, e := range nodes {
			if e.Server().JetStreamIsLeader() && allCurrent(nodes) && seesAllPeers(e, len(nodes)) {
				return
			}
		}
		select {
		case <-t.Context().Done():
			t.Fatalf("waiting for a JetStream meta leader: %v", t.Context().Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Fatalf("no JetStream meta leader among %d nodes after %s", len(nodes), clusterReadyTimeout)
}

// seesAllPeers reports whether the meta leader e counts every other node as a current,
// online peer: until it does, placing a replicated stream fails with "no suitable peers".
func seesAllPeers(e *bus.Embedded, n int) bool {
	info, err := e.Server().Jsz(&server.JSzOptions{})
	if err != nil || info.Meta == nil || len(info.Meta.Replicas) != n-1 {
		return false
	}
	for _, p := range info.Meta.Replicas {
		if !p.Current || p.Offline {
			return false
		}
	}
	return true
}

func allCurrent(nodes []*bus.Embedded) bool {
	for _, e := range nodes {
		if !e.Server().JetStreamIsCurrent() {
			return false
		}
	}
	return true
}

// Stored returns every message stored in stream on subject (wildcards allowed), oldest
// first, without disturbing any durable consumer. It reads until the last message it got
// says nothing more is pending, rather than until a fetch that does not wait comes back
// empty (which it may while the server still has messages to deliver): a checker that
// read short would count outcomes and run ends as missing.
func Stored(t testing.TB, js jetstream.JetStream, stream, subject string) []jetstream.Msg {
	t.Helper()
	if storedCount(t, js, stream, subject) == 0 {
		return nil
	}
	cons, err := js.OrderedConsumer(t.Context(), stream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}})
	if err != nil {
		t.Fatalf("read %s on %s: %v", subject, stream, err)
	}
	// Tests poll with Stored: each call's consumer goes, or they pile up to the server's limit.
	defer func() {
		if info := cons.CachedInfo(); info != nil {
			_ = js.DeleteConsumer(context.Background(), stream, info.Name)
		}
	}()
	var out []jetstream.Msg
	deadline := time.Now().Add(storedReadTimeout)
	for {
		batch, err := cons.Fetch(500, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			t.Fatalf("read %s on %s: %v", subject, stream, err)
		}
		pending := uint64(1)
		for msg := range batch.Messages() {
			out = append(out, msg)
			if md, err := msg.Metadata(); err == nil {
				pending = md.NumPending
			}
		}
		if pending == 0 {
			return out
		}
		if time.Now().After(deadline) {
			t.Fatalf("read %s on %s: %d messages after %s, and the consumer still has more pending", subject, stream, len(out), storedReadTimeout)
		}
	}
}

// storedReadTimeout bounds Stored's read of a stream.
const storedReadTimeout = time.Minute

// storedCount is how many messages stream holds on subject.
func storedCount(t testing.TB, js jetstream.JetStream, stream, subject string) uint64 {
	t.Helper()
	s, err := js.Stream(t.Context(), stream)
	if err != nil {
		t.Fatalf("read %s on %s: %v", subject, stream, err)
	}
	info, err := s.Info(t.Context(), jetstream.WithSubjectFilter(subject))
	if err != nil {
		t.Fatalf("read %s on %s: %v", subject, stream, err)
	}
	var n uint64
	for _, c := range info.State.Subjects {
		n += c
	}
	return n
}

// Secured is a provisioned server running the configuration `sluice auth init` writes, with
// an admin connection in Env.
type Secured struct {
	Env
	// Dir is the auth directory: credentials of every role's default user, the trust file,
	// the policy and the evidence key.
	Dir    string
	Layout auth.Layout
}

// StartSecured creates an auth directory, starts a server with its configuration, connects
// as admin and provisions the bus with c.
func StartSecured(t testing.TB, c bus.Config) *Secured {
	t.Helper()
	dir := t.TempDir()
	if _, err := auth.Init(dir, auth.InitOptions{Names: c.WithDefaults().Names}); err != nil {
		t.Fatalf("auth init: %v", err)
	}
	s := &Secured{Dir: dir, Layout: auth.Layout{Dir: dir}}
	e, err := bus.StartEmbedded(t.Context(), bus.EmbeddedOptions{
		ConfigFile: s.Layout.Config(), DataDir: t.TempDir(), Listen: "127.0.0.1:-1", Logger: Logger(),
	})
	if err != nil {
		t.Fatalf("start the secured server: %v", err)
	}
	t.Cleanup(e.Shutdown)
	s.Server = e
	s.NC, s.JS = s.Connect(t, auth.RoleAdmin, auth.DefaultUser)
	s.Config = c.WithDefaults()
	if err := bus.Provision(t.Context(), s.JS, s.Config); err != nil {
		t.Fatalf("provision: %v", err)
	}
	return s
}

// Connect connects as the user name of role r; the connection closes when the test ends.
// Asynchronous errors (permission violations) are left on the connection (LastError).
func (s *Secured) Connect(t testing.TB, r auth.Role, name string) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := bus.Connect(t.Context(), bus.ConnectOptions{
		URL: s.Server.ClientURL(), CredsFile: s.Layout.Creds(r, name), Name: t.Name(), ErrorHandler: func(error) {},
	})
	if err != nil {
		t.Fatalf("connect as %s: %v", auth.Principal(r, name), err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return nc, js
}

// AddUser mints another user of role r.
func (s *Secured) AddUser(t testing.TB, r auth.Role, name string, pools ...string) {
	t.Helper()
	if _, err := auth.AddUser(s.Dir, r, name, pools); err != nil {
		t.Fatalf("add user %s: %v", auth.Principal(r, name), err)
	}
}

// Fleet is what a coordinator loads from the auth directory.
func (s *Secured) Fleet(t testing.TB) *auth.Fleet {
	t.Helper()
	f, err := auth.LoadFleet(s.Dir)
	if err != nil {
		t.Fatal(err)
	}
	return f
}
