package auth_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluice-ci/sluice/internal/auth"
	"github.com/sluice-ci/sluice/internal/bus"
	"github.com/sluice-ci/sluice/internal/bus/bustest"
	sluicev1 "github.com/sluice-ci/sluice/proto/sluice/v1"
)

// These tests run a real nats-server with the configuration `sluice auth init` writes, connect
// with each role's credentials and try every action from the attacker's side: each forbidden
// one must fail with the server's permission error, each allowed one must work.

type secured struct {
	dir    string
	url    string
	names  bus.Names
	layout auth.Layout
	users  map[auth.Role]bus.Identity
}

func startSecured(t *testing.T) *secured {
	t.Helper()
	dir := t.TempDir()
	if _, err := auth.Init(dir, auth.InitOptions{Pools: []string{"default"}}); err != nil {
		t.Fatalf("auth init: %v", err)
	}
	s := &secured{dir: dir, names: bus.NewNames(""), layout: auth.Layout{Dir: dir}, users: map[auth.Role]bus.Identity{}}
	e, err := bus.StartEmbedded(t.Context(), bus.EmbeddedOptions{
		ConfigFile: s.layout.Config(), DataDir: t.TempDir(), Listen: "127.0.0.1:-1", Logger: bustest.Logger(),
	})
	if err != nil {
		t.Fatalf("start the secured server: %v", err)
	}
	t.Cleanup(e.Shutdown)
	s.url = e.ClientURL()
	for _, r := range auth.Roles() {
		id, err := bus.ReadIdentity(s.layout.Creds(r, auth.DefaultUser))
		if err != nil {
			t.Fatalf("identity of %s: %v", r, err)
		}
		if id.Role != string(r) || id.Name != auth.DefaultUser {
			t.Fatalf("creds of %s say %s", r, id.Principal())
		}
		s.users[r] = id
	}
	// The coordinator provisions the bus, as it does at start.
	nc := s.connect(t, auth.RoleCoordinator)
	js, _ := jetstream.New(nc)
	if err := bus.Provision(t.Context(), js, bus.Config{}); err != nil {
		t.Fatalf("the coordinator cannot provision: %v", err)
	}
	for _, k := range sluicev1.AllKinds() {
		for _, pool := range []string{"default", "gpu"} {
			if _, err := bus.WorkerConsumer(t.Context(), js, bus.Config{}, k.Slug(), pool, 16); err != nil {
				t.Fatalf("consumer %s/%s: %v", k.Slug(), pool, err)
			}
		}
	}
	return s
}

func (s *secured) connect(t *testing.T, r auth.Role) *nats.Conn {
	t.Helper()
	nc, err := bus.Connect(t.Context(), bus.ConnectOptions{URL: s.url, CredsFile: s.layout.Creds(r, auth.DefaultUser), Name: t.Name(), ErrorHandler: func(error) {}})
	if err != nil {
		t.Fatalf("connect as %s: %v", r, err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// action is one thing a user may try. do returns the operation's own error; the server's
// permission error arrives asynchronously and is read from the connection.
type action struct {
	name    string
	allowed func(auth.Role) bool
	do      func(ctx context.Context, s *secured, nc *nats.Conn, js jetstream.JetStream, me bus.Identity) error
}

func roles(rs ...auth.Role) func(auth.Role) bool {
	return func(r auth.Role) bool { return slices.Contains(rs, r) }
}

func isWorker(r auth.Role) bool { _, ok := r.Kind(); return ok }

func publish(subject string) func(context.Context, *secured, *nats.Conn, jetstream.JetStream, bus.Identity) error {
	return func(_ context.Context, _ *secured, nc *nats.Conn, _ jetstream.JetStream, _ bus.Identity) error {
		return nc.Publish(subject, []byte("x"))
	}
}

func subscribe(subject func(*secured) string) func(context.Context, *secured, *nats.Conn, jetstream.JetStream, bus.Identity) error {
	return func(_ context.Context, s *secured, nc *nats.Conn, _ jetstream.JetStream, _ bus.Identity) error {
		_, err := nc.SubscribeSync(subject(s))
		return err
	}
}

// pull fetches from the consumer of (kind, pool) without waiting for a message.
func pull(kind, pool string) func(context.Context, *secured, *nats.Conn, jetstream.JetStream, bus.Identity) error {
	return func(ctx context.Context, s *secured, _ *nats.Conn, js jetstream.JetStream, _ bus.Identity) error {
		cons, err := js.Consumer(ctx, s.names.TasksStream(), s.names.WorkerConsumer(kind, pool))
		if err != nil {
			return err
		}
		batch, err := cons.FetchNoWait(1)
		if err != nil {
			return err
		}
		for range batch.Messages() {
		}
		return batch.Error()
	}
}

func kvPut(bucket func(bus.Names) string) func(context.Context, *secured, *nats.Conn, jetstream.JetStream, bus.Identity) error {
	return func(ctx context.Context, s *secured, _ *nats.Conn, js jetstream.JetStream, me bus.Identity) error {
		kv, err := js.KeyValue(ctx, bucket(s.names))
		if err != nil {
			return err
		}
		_, err = kv.Put(ctx, "probe-"+me.Role, []byte("x"))
		return err
	}
}

func kvGet(bucket func(bus.Names) string) func(context.Context, *secured, *nats.Conn, jetstream.JetStream, bus.Identity) error {
	return func(ctx context.Context, s *secured, _ *nats.Conn, js jetstream.JetStream, _ bus.Identity) error {
		kv, err := js.KeyValue(ctx, bucket(s.names))
		if err != nil {
			return err
		}
		_, err = kv.Get(ctx, "anything")
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return nil
		}
		return err
	}
}

func objPut(bucket func(bus.Names) string) func(context.Context, *secured, *nats.Conn, jetstream.JetStream, bus.Identity) error {
	return func(ctx context.Context, s *secured, _ *nats.Conn, js jetstream.JetStream, me bus.Identity) error {
		store, err := js.ObjectStore(ctx, bucket(s.names))
		if err != nil {
			return err
		}
		_, err = store.Put(ctx, jetstream.ObjectMeta{Name: "probe/" + me.Role + "/" + fmt.Sprint(time.Now().UnixNano())}, bytes.NewReader([]byte("data")))
		return err
	}
}

// objGet reads an object the test stored beforehand as admin.
func objGet(bucket func(bus.Names) string) func(context.Context, *secured, *nats.Conn, jetstream.JetStream, bus.Identity) error {
	return func(ctx context.Context, s *secured, _ *nats.Conn, js jetstream.JetStream, _ bus.Identity) error {
		store, err := js.ObjectStore(ctx, bucket(s.names))
		if err != nil {
			return err
		}
		data, err := store.GetBytes(ctx, "fixture")
		if err == nil && string(data) != "fixture data" {
			return fmt.Errorf("read %q", data)
		}
		return err
	}
}

func readStream(stream func(bus.Names) string) func(context.Context, *secured, *nats.Conn, jetstream.JetStream, bus.Identity) error {
	return func(ctx context.Context, s *secured, _ *nats.Conn, js jetstream.JetStream, _ bus.Identity) error {
		st, err := js.Stream(ctx, stream(s.names))
		if err != nil {
			return err
		}
		cons, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
		if err != nil {
			return err
		}
		// The streams may be empty: what matters is that the server lets the reader ask.
		if _, err = cons.Next(jetstream.FetchMaxWait(200 * time.Millisecond)); errors.Is(err, nats.ErrTimeout) {
			return nil
		}
		return err
	}
}

func jsRequest(subject func(bus.Names) string, body string) func(context.Context, *secured, *nats.Conn, jetstream.JetStream, bus.Identity) error {
	return func(ctx context.Context, s *secured, nc *nats.Conn, _ jetstream.JetStream, _ bus.Identity) error {
		_, err := nc.RequestWithContext(ctx, subject(s.names), []byte(body))
		return err
	}
}

var (
	clients     = []auth.Role{auth.RoleSubmitter, auth.RoleApprover, auth.RoleObserver}
	coordAdmin  = roles(auth.RoleCoordinator, auth.RoleAdmin)
	adminOnly   = roles(auth.RoleAdmin)
	readersRole = func(r auth.Role) bool { return slices.Contains(clients, r) || coordAdmin(r) }
)

func actions() []action {
	n := bus.NewNames("")
	acts := []action{
		{"publish a task", coordAdmin, publish(n.Task("static", "default", "r1"))},
		{"publish a run.passed event", coordAdmin, publish(n.Event("web", "r1", "run.passed"))},
		{"publish a cancel signal", coordAdmin, publish(n.Cancel("r1"))},
		{"publish a result under its own name", func(r auth.Role) bool { return isWorker(r) || r == auth.RoleAdmin },
			func(_ context.Context, s *secured, nc *nats.Conn, _ jetstream.JetStream, me bus.Identity) error {
				return nc.Publish(s.names.Result("r1", me), []byte("x"))
			}},
		{"publish a result under another worker's name", adminOnly, publish(n.Result("r1", bus.Identity{Role: "worker-test", Name: "ci-2"}))},
		{"publish a log chunk", func(r auth.Role) bool { return isWorker(r) || r == auth.RoleAdmin }, publish(n.Log("r1", "lint"))},
		{"call the run API under another principal", adminOnly, publish(n.API("approve", bus.Identity{Role: "approver", Name: "alice"}))},
		{"subscribe to results", adminOnly, subscribe(func(s *secured) string { return s.names.AllResults() })},
		{"subscribe to tasks", adminOnly, subscribe(func(s *secured) string { return s.names.AllTasks() })},
		{"subscribe to the run API", coordAdmin, subscribe(func(s *secured) string { return s.names.APIGroup() + ".>" })},
		{"subscribe to cancel signals", func(r auth.Role) bool { return isWorker(r) || r == auth.RoleAdmin },
			subscribe(func(s *secured) string { return s.names.AllCancels() })},
		{"subscribe to every inbox", adminOnly, subscribe(func(*secured) string { return "_INBOX.>" })},
		{"subscribe to another user's inbox", adminOnly, func(_ context.Context, s *secured, nc *nats.Conn, _ jetstream.JetStream, me bus.Identity) error {
			other := s.users[auth.RoleCoordinator]
			if other.User == me.User {
				other = s.users[auth.WorkerRole(sluicev1.StageKind_STAGE_KIND_STATIC)]
			}
			_, err := nc.SubscribeSync(bus.InboxPrefix(other.User) + ".>")
			return err
		}},
		{"create another consumer on the tasks stream", coordAdmin, func(ctx context.Context, s *secured, _ *nats.Conn, js jetstream.JetStream, _ bus.Identity) error {
			// A work queue takes one consumer per subject: the spy asks for a pool nobody serves.
			_, err := js.CreateOrUpdateConsumer(ctx, s.names.TasksStream(), jetstream.ConsumerConfig{Durable: "spy", FilterSubject: s.names.TaskFilter("static", "spy"), AckPolicy: jetstream.AckExplicitPolicy})
			return err
		}},
		{"read a task by sequence", coordAdmin, jsRequest(func(n bus.Names) string { return "$JS.API.STREAM.MSG.GET." + n.TasksStream() }, `{"seq":1}`)},
		{"read the results stream", coordAdmin, readStream(func(n bus.Names) string { return n.ResultsStream() })},
		{"read the events stream", readersRole, readStream(func(n bus.Names) string { return n.EventsStream() })},
		{"read the logs stream", readersRole, readStream(func(n bus.Names) string { return n.LogsStream() })},
		{"write run state", coordAdmin, kvPut(bus.Names.RunsBucket)},
		{"read run state from KV", coordAdmin, kvGet(bus.Names.RunsBucket)},
		// A seal says a finished run's events are published: a forged one would keep a
		// restarted coordinator from publishing them.
		{"seal a run", coordAdmin, publish("$KV." + n.RunsBucket() + "._sealed.mallory.1")},
		{"write a lock", coordAdmin, kvPut(bus.Names.LocksBucket)},
		{"read the coordinators' secrets", coordAdmin, kvGet(bus.Names.SecretsBucket)},
		{"write test timings", roles(auth.RoleCoordinator, auth.RoleAdmin, auth.WorkerRole(sluicev1.StageKind_STAGE_KIND_TEST), auth.WorkerRole(sluicev1.StageKind_STAGE_KIND_E2E)), kvPut(bus.Names.TimingsBucket)},
		{"upload a source bundle", roles(auth.RoleSubmitter, auth.RoleAdmin), objPut(bus.Names.SourcesStore)},
		{"read a source bundle", func(r auth.Role) bool { return isWorker(r) || coordAdmin(r) }, objGet(bus.Names.SourcesStore)},
		{"store an artifact", func(r auth.Role) bool { return isWorker(r) || coordAdmin(r) }, objPut(bus.Names.ArtifactsStore)},
		{"read an artifact", readersRole, objGet(bus.Names.ArtifactsStore)},
		{"purge the artifacts", coordAdmin, jsRequest(func(n bus.Names) string { return "$JS.API.STREAM.PURGE." + bus.ObjectStream(n.ArtifactsStore()) }, `{"filter":"$O.nothing.>"}`)},
		{"write its own heartbeat", func(r auth.Role) bool { return isWorker(r) || r == auth.RoleAdmin },
			func(_ context.Context, s *secured, nc *nats.Conn, _ jetstream.JetStream, me bus.Identity) error {
				kind := strings.TrimPrefix(me.Role, "worker-")
				return nc.Publish("$KV."+s.names.WorkersBucket()+"."+s.names.WorkerKey(kind, me.Name, "host-1"), nil)
			}},
		{"write another user's heartbeat", adminOnly, publish("$KV." + n.WorkersBucket() + "." + n.WorkerKey("static", "mallory", "host-1"))},
		{"list the workers", readersRole, func(ctx context.Context, s *secured, _ *nats.Conn, js jetstream.JetStream, _ bus.Identity) error {
			kv, err := js.KeyValue(ctx, s.names.WorkersBucket())
			if err != nil {
				return err
			}
			_, err = kv.Keys(ctx)
			if errors.Is(err, jetstream.ErrNoKeysFound) {
				return nil
			}
			return err
		}},
		{"ack its own notifier's events", readersRole, func(_ context.Context, s *secured, nc *nats.Conn, _ jetstream.JetStream, me bus.Identity) error {
			return nc.Publish("$JS.ACK."+s.names.EventsStream()+"."+s.names.NotifyConsumer(me.Name)+".1.1.1.1.0", nil)
		}},
		{"ack another user's notifier's events", coordAdmin, publish("$JS.ACK." + n.EventsStream() + "." + n.NotifyConsumer("mallory") + ".1.1.1.1.0")},
		{"delete the events stream", adminOnly, jsRequest(func(n bus.Names) string { return "$JS.API.STREAM.DELETE.NOT_" + n.EventsStream() }, "")},
	}
	for _, v := range auth.Verbs() {
		acts = append(acts, action{"call the run API verb " + string(v) + " under its own name",
			func(r auth.Role) bool { return r.Allows(v) },
			func(_ context.Context, s *secured, nc *nats.Conn, _ jetstream.JetStream, me bus.Identity) error {
				return nc.Publish(s.names.API(string(v), me), []byte("x"))
			}})
	}
	for _, k := range sluicev1.AllKinds() {
		worker := auth.WorkerRole(k)
		acts = append(acts,
			action{"pull " + k.Slug() + " tasks", func(r auth.Role) bool { return r == worker || coordAdmin(r) }, pull(k.Slug(), "default")},
			action{"pull " + k.Slug() + " tasks of a pool it does not serve", coordAdmin, pull(k.Slug(), "gpu")},
		)
	}
	return acts
}

func TestPermissions(t *testing.T) {
	s := startSecured(t)
	admin := s.connect(t, auth.RoleAdmin)
	ajs, _ := jetstream.New(admin)
	for _, b := range []string{s.names.SourcesStore(), s.names.ArtifactsStore()} {
		store, err := ajs.ObjectStore(t.Context(), b)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := store.PutBytes(t.Context(), "fixture", []byte("fixture data")); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range auth.Roles() {
		t.Run(string(r), func(t *testing.T) {
			for _, a := range actions() {
				t.Run(a.name, func(t *testing.T) {
					nc := s.connect(t, r)
					js, _ := jetstream.New(nc)
					err := attempt(t, nc, func(ctx context.Context) error { return a.do(ctx, s, nc, js, s.users[r]) })
					switch allowed := a.allowed(r); {
					case allowed && err != nil:
						t.Fatalf("%s may %s, but: %v", r, a.name, err)
					case !allowed && !errors.Is(err, nats.ErrPermissionViolation):
						t.Fatalf("%s must not %s, but the server did not refuse it (err: %v)", r, a.name, err)
					}
				})
			}
		})
	}
}

// attempt runs op and returns the server's permission error if it refused anything op sent,
// else op's own error. A refused request never gets an answer, so op is cancelled as soon as
// the refusal arrives.
func attempt(t *testing.T, nc *nats.Conn, op func(context.Context) error) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- op(ctx) }()
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			// A refused publish is only reported after a round trip.
			if ferr := nc.FlushTimeout(2 * time.Second); ferr != nil && !strings.Contains(ferr.Error(), "closed") {
				return ferr
			}
			if last := nc.LastError(); errors.Is(last, nats.ErrPermissionViolation) {
				return last
			}
			return err
		case <-tick.C:
			if last := nc.LastError(); errors.Is(last, nats.ErrPermissionViolation) {
				cancel()
				<-done
				return last
			}
		}
	}
}
