package bus

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func startServer(t *testing.T, dir string) *Embedded {
	t.Helper()
	e, err := StartEmbedded(t.Context(), EmbeddedOptions{DataDir: dir, Listen: "127.0.0.1:-1", Logger: quietLogger()})
	if err != nil {
		t.Fatalf("StartEmbedded: %v", err)
	}
	t.Cleanup(e.Shutdown)
	return e
}

func connect(t *testing.T, e *Embedded) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := Connect(t.Context(), ConnectOptions{URL: e.ClientURL(), Name: t.Name()})
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("jetstream.New: %v", err)
	}
	return nc, js
}

func TestEmbeddedRestartKeepsData(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	cfg := Config{}.WithDefaults()

	e, err := StartEmbedded(ctx, EmbeddedOptions{DataDir: dir, Listen: "127.0.0.1:-1", Logger: quietLogger()})
	if err != nil {
		t.Fatalf("StartEmbedded: %v", err)
	}
	nc, js := connect(t, e)
	if err := Provision(ctx, js, cfg); err != nil {
		t.Fatalf("Provision: %v", err)
	}
	if _, err := js.Publish(ctx, cfg.Names.Result("r1", Identity{Role: "worker-static", Name: "default"}), []byte("hello")); err != nil {
		t.Fatalf("publish: %v", err)
	}
	nc.Close()
	e.Shutdown()

	e2 := startServer(t, dir)
	_, js2 := connect(t, e2)
	s, err := js2.Stream(ctx, cfg.Names.ResultsStream())
	if err != nil {
		t.Fatalf("results stream after restart: %v", err)
	}
	msg, err := s.GetLastMsgForSubject(ctx, cfg.Names.Result("r1", Identity{Role: "worker-static", Name: "default"}))
	if err != nil {
		t.Fatalf("message after restart: %v", err)
	}
	if string(msg.Data) != "hello" {
		t.Fatalf("data after restart = %q, want hello", msg.Data)
	}
}

func TestStartEmbeddedErrors(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	tests := []struct {
		name string
		o    EmbeddedOptions
		want string
	}{
		{"no data dir", EmbeddedOptions{Listen: "127.0.0.1:-1"}, "data directory is required"},
		{"bad listen", EmbeddedOptions{DataDir: t.TempDir(), Listen: "localhost"}, "listen address"},
		{"bad port", EmbeddedOptions{DataDir: t.TempDir(), Listen: "127.0.0.1:http"}, "port must be a number"},
		{"missing config", EmbeddedOptions{DataDir: t.TempDir(), ConfigFile: "/nonexistent/nats.conf"}, "nats-server config"},
		{"cluster without name", EmbeddedOptions{DataDir: t.TempDir(), Listen: "127.0.0.1:-1",
			Cluster: &ClusterOptions{Name: "c", Listen: "127.0.0.1:-1"}}, "ServerName is required"},
		{"jetstream cluster without routes", EmbeddedOptions{DataDir: t.TempDir(), Listen: "127.0.0.1:-1", ServerName: "n0",
			Cluster: &ClusterOptions{Name: "c", Listen: "127.0.0.1:-1"}}, "failed to start"},
		{"address in use", EmbeddedOptions{DataDir: t.TempDir(), Listen: busy.Addr().String()}, "failed to start"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.o.Logger = quietLogger()
			e, err := StartEmbedded(t.Context(), tt.o)
			if err == nil {
				e.Shutdown()
				t.Fatal("StartEmbedded succeeded, want error")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q does not mention %q", err, tt.want)
			}
		})
	}
}

func TestProvisionIdempotent(t *testing.T) {
	ctx := t.Context()
	e := startServer(t, t.TempDir())
	_, js := connect(t, e)
	cfg := Config{}.WithDefaults()

	if err := Provision(ctx, js, cfg); err != nil {
		t.Fatalf("first Provision: %v", err)
	}
	before := streamConfigs(t, js)
	if err := Provision(ctx, js, cfg); err != nil {
		t.Fatalf("second Provision: %v", err)
	}
	after := streamConfigs(t, js)
	if !reflect.DeepEqual(before, after) {
		t.Fatalf("second Provision changed configs:\nbefore %+v\nafter  %+v", before, after)
	}
	// 5 streams + 4 KV + 2 object stores, each one stream.
	if len(after) != 12 {
		t.Fatalf("got %d streams, want 12: %v", len(after), keys(after))
	}
}

// TestDeprovisionRemovesOnlyItsOwn: what Provision made under one prefix goes, with what it
// held; another installation's streams under another prefix stay; a second call is no error.
func TestDeprovisionRemovesOnlyItsOwn(t *testing.T) {
	ctx := t.Context()
	e := startServer(t, t.TempDir())
	_, js := connect(t, e)
	mine, theirs := Config{Names: NewNames("bench1")}.WithDefaults(), Config{Names: NewNames("prod")}.WithDefaults()
	for _, c := range []Config{mine, theirs} {
		if err := Provision(ctx, js, c); err != nil {
			t.Fatalf("Provision %s: %v", c.Names.Prefix, err)
		}
	}
	for range 2 {
		if err := Deprovision(ctx, js, mine); err != nil {
			t.Fatalf("Deprovision: %v", err)
		}
	}
	left := streamConfigs(t, js)
	if len(left) != 12 {
		t.Fatalf("%d streams left, want prod's 12: %v", len(left), keys(left))
	}
	for name := range left {
		if strings.Contains(strings.ToLower(name), "bench1") {
			t.Errorf("stream %s of the deprovisioned prefix is still there", name)
		}
	}
}

func streamConfigs(t *testing.T, js jetstream.JetStream) map[string]jetstream.StreamConfig {
	t.Helper()
	out := map[string]jetstream.StreamConfig{}
	l := js.ListStreams(t.Context())
	for info := range l.Info() {
		out[info.Config.Name] = info.Config
	}
	if err := l.Err(); err != nil {
		t.Fatalf("list streams: %v", err)
	}
	return out
}

func keys[V any](m map[string]V) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}

func TestProvisionStreams(t *testing.T) {
	ctx := t.Context()
	e := startServer(t, t.TempDir())
	_, js := connect(t, e)
	cfg := Config{Names: NewNames("acme")}.WithDefaults()
	if err := Provision(ctx, js, cfg); err != nil {
		t.Fatalf("Provision: %v", err)
	}
	n := cfg.Names
	tests := []struct {
		stream    string
		subjects  []string
		retention jetstream.RetentionPolicy
		maxAge    time.Duration
		dupes     time.Duration // 0: not checked
		maxBytes  int64
	}{
		{n.TasksStream(), []string{"acme.task.>"}, jetstream.WorkQueuePolicy, 0, 10 * time.Minute, -1},
		{n.ResultsStream(), []string{"acme.result.>"}, jetstream.LimitsPolicy, 7 * 24 * time.Hour, 10 * time.Minute, -1},
		{n.EventsStream(), []string{"acme.event.>"}, jetstream.LimitsPolicy, 30 * 24 * time.Hour, 10 * time.Minute, -1},
		{n.LogsStream(), []string{"acme.log.>"}, jetstream.LimitsPolicy, 7 * 24 * time.Hour, 0, 1 << 30},
		{n.AdvisoryStream(), []string{"$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.ACME_TASKS.*"}, jetstream.LimitsPolicy, 7 * 24 * time.Hour, 0, -1},
	}
	for _, tt := range tests {
		t.Run(tt.stream, func(t *testing.T) {
			s, err := js.Stream(ctx, tt.stream)
			if err != nil {
				t.Fatalf("stream: %v", err)
			}
			c := s.CachedInfo().Config
			if !reflect.DeepEqual(c.Subjects, tt.subjects) {
				t.Errorf("subjects = %v, want %v", c.Subjects, tt.subjects)
			}
			if c.Retention != tt.retention {
				t.Errorf("retention = %v, want %v", c.Retention, tt.retention)
			}
			if c.MaxAge != tt.maxAge {
				t.Errorf("max age = %v, want %v", c.MaxAge, tt.maxAge)
			}
			if tt.dupes != 0 && c.Duplicates != tt.dupes {
				t.Errorf("duplicates = %v, want %v", c.Duplicates, tt.dupes)
			}
			if c.MaxBytes != tt.maxBytes {
				t.Errorf("max bytes = %v, want %v", c.MaxBytes, tt.maxBytes)
			}
			if c.Storage != jetstream.FileStorage || c.Replicas != 1 {
				t.Errorf("storage %v replicas %d, want file, 1", c.Storage, c.Replicas)
			}
		})
	}

	for _, b := range []string{"acme_runs", "acme_timings", "acme_locks", "acme_secrets"} {
		kv, err := js.KeyValue(ctx, b)
		if err != nil {
			t.Fatalf("KV %s: %v", b, err)
		}
		st, err := kv.Status(ctx)
		if err != nil {
			t.Fatalf("KV %s status: %v", b, err)
		}
		if st.History() != 1 {
			t.Errorf("KV %s history = %d, want 1", b, st.History())
		}
	}
	for _, b := range []string{"acme_sources", "acme_artifacts"} {
		if _, err := js.ObjectStore(ctx, b); err != nil {
			t.Errorf("object store %s: %v", b, err)
		}
	}
}

func TestTaskDuplicatesDropped(t *testing.T) {
	ctx := t.Context()
	e := startServer(t, t.TempDir())
	_, js := connect(t, e)
	cfg := Config{}.WithDefaults()
	if err := Provision(ctx, js, cfg); err != nil {
		t.Fatalf("Provision: %v", err)
	}
	id := TaskMsgID("r1", "lint", 1, 0, 1)
	for i := range 2 {
		ack, err := js.Publish(ctx, cfg.Names.Task("static", "default", "r1"), []byte("t"), jetstream.WithMsgID(id))
		if err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
		if ack.Duplicate != (i == 1) {
			t.Fatalf("publish %d: duplicate = %v", i, ack.Duplicate)
		}
	}
}

func TestWorkerConsumer(t *testing.T) {
	ctx := t.Context()
	e := startServer(t, t.TempDir())
	_, js := connect(t, e)
	cfg := Config{}.WithDefaults()
	if err := Provision(ctx, js, cfg); err != nil {
		t.Fatalf("Provision: %v", err)
	}
	cons, err := WorkerConsumer(ctx, js, cfg, "backup-verify", "default", 4)
	if err != nil {
		t.Fatalf("WorkerConsumer: %v", err)
	}
	c := cons.CachedInfo().Config
	want := []struct {
		field     string
		got, want any
	}{
		{"durable", c.Durable, "workers_backup-verify_default"},
		{"filter", c.FilterSubject, "sluice.task.backup-verify.default.>"},
		{"ack policy", c.AckPolicy, jetstream.AckExplicitPolicy},
		{"ack wait", c.AckWait, 30 * time.Second},
		{"max deliver", c.MaxDeliver, 5},
		{"backoff", c.BackOff, []time.Duration{30 * time.Second, time.Minute, 2 * time.Minute, 4 * time.Minute}},
		{"max ack pending", c.MaxAckPending, 4},
	}
	for _, w := range want {
		if !reflect.DeepEqual(w.got, w.want) {
			t.Errorf("%s = %v, want %v", w.field, w.got, w.want)
		}
	}

	// Again with a new concurrency cap: updated in place, same consumer.
	cons2, err := WorkerConsumer(ctx, js, cfg, "backup-verify", "default", 8)
	if err != nil {
		t.Fatalf("WorkerConsumer update: %v", err)
	}
	if got := cons2.CachedInfo().Config.MaxAckPending; got != 8 {
		t.Fatalf("updated max ack pending = %d, want 8", got)
	}

	// Workers of another kind only see their own tasks.
	if _, err := js.Publish(ctx, cfg.Names.Task("static", "default", "r1"), []byte("s")); err != nil {
		t.Fatalf("publish: %v", err)
	}
	if _, err := js.Publish(ctx, cfg.Names.Task("backup-verify", "default", "r1"), []byte("b")); err != nil {
		t.Fatalf("publish: %v", err)
	}
	batch, err := cons2.Fetch(2, jetstream.FetchMaxWait(time.Second))
	if err != nil {
		t.Fatalf("fetch: %v", err)
	}
	var got []string
	for m := range batch.Messages() {
		got = append(got, string(m.Data()))
		if err := m.Ack(); err != nil {
			t.Fatalf("ack: %v", err)
		}
	}
	if !reflect.DeepEqual(got, []string{"b"}) {
		t.Fatalf("backup-verify worker got %v, want [b]", got)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		c    Config
		ok   bool
	}{
		{"defaults", Config{}, true},
		{"short ack wait", Config{AckWait: time.Second}, true},
		{"max deliver 2 trims backoff", Config{MaxDeliver: 2}, true},
		{"backoff longer than max deliver", Config{MaxDeliver: 2, BackOff: []time.Duration{time.Minute, time.Minute, time.Minute}}, false},
		{"backoff below ack wait", Config{AckWait: time.Minute, BackOff: []time.Duration{time.Second}}, false},
		{"events age below dup window", Config{EventsMaxAge: time.Minute}, false},
		{"runs kept a second", Config{RunsMaxAge: time.Second}, true},
		{"runs kept below the server's minimum TTL", Config{RunsMaxAge: time.Millisecond}, false},
		{"timings kept below the minimum", Config{TimingsMaxAge: 10 * time.Millisecond}, false},
		{"artifacts kept below the minimum", Config{ArtifactsMaxAge: 500 * time.Millisecond}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.c.WithDefaults().Validate()
			if (err == nil) != tt.ok {
				t.Fatalf("Validate() = %v, want ok=%v", err, tt.ok)
			}
			if err != nil && !errors.Is(err, ErrBadConfig) {
				t.Fatalf("error %v does not wrap ErrBadConfig", err)
			}
		})
	}
}

func TestWithDefaultsBackOffStartsAtAckWait(t *testing.T) {
	c := Config{AckWait: 2 * time.Second, MaxDeliver: 3}.WithDefaults()
	want := []time.Duration{2 * time.Second, 4 * time.Second, 8 * time.Second}
	if !reflect.DeepEqual(c.BackOff, want) {
		t.Fatalf("BackOff = %v, want %v", c.BackOff, want)
	}
}

func TestConnectUnreachable(t *testing.T) {
	// A port that was free a moment ago: nothing listens there.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "nats://" + l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	_, err = Connect(t.Context(), ConnectOptions{URL: url, Timeout: 500 * time.Millisecond})
	if !errors.Is(err, ErrUnreachable) {
		t.Fatalf("error %v does not wrap ErrUnreachable", err)
	}
	if !strings.Contains(err.Error(), url) {
		t.Fatalf("error %q does not name %s", err, url)
	}
}

func TestConnectCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := Connect(ctx, ConnectOptions{URL: "nats://127.0.0.1:1"})
	if !errors.Is(err, ErrUnreachable) || !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v, want ErrUnreachable and context.Canceled", err)
	}
}

func TestConnectBadOptions(t *testing.T) {
	tests := []struct {
		name string
		o    ConnectOptions
		want string
	}{
		{"missing creds", ConnectOptions{CredsFile: "/nonexistent.creds"}, "credentials"},
		{"cert without key", ConnectOptions{TLSCert: "/x.pem"}, "both"},
		{"missing CA", ConnectOptions{TLSCA: "/nonexistent-ca.pem"}, "TLS CA"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Connect(t.Context(), tt.o)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one mentioning %q", err, tt.want)
			}
			if errors.Is(err, ErrUnreachable) {
				t.Fatalf("configuration error %v must not be ErrUnreachable", err)
			}
		})
	}
}

func TestDefaultURL(t *testing.T) {
	t.Setenv(EnvURL, "")
	if got := DefaultURL(); got != "nats://127.0.0.1:4222" {
		t.Fatalf("DefaultURL() = %q", got)
	}
	t.Setenv(EnvURL, "nats://elsewhere:4222")
	if got := DefaultURL(); got != "nats://elsewhere:4222" {
		t.Fatalf("DefaultURL() with env = %q", got)
	}
}

func TestPurgeRunTasks(t *testing.T) {
	ctx := t.Context()
	e := startServer(t, t.TempDir())
	_, js := connect(t, e)
	cfg := Config{}.WithDefaults()
	if err := Provision(ctx, js, cfg); err != nil {
		t.Fatalf("Provision: %v", err)
	}
	n := cfg.Names
	for _, run := range []string{"r1", "r2"} {
		for _, kind := range []string{"static", "test", "e2e"} {
			subj := n.Task(kind, "default", run)
			if _, err := js.Publish(ctx, subj, []byte(subj)); err != nil {
				t.Fatalf("publish: %v", err)
			}
		}
	}
	s, err := js.Stream(ctx, n.TasksStream())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Purge(ctx, jetstream.WithPurgeSubject(n.RunTasks("r1"))); err != nil {
		t.Fatalf("purge: %v", err)
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(n.AllTasks()))
	if err != nil {
		t.Fatal(err)
	}
	var left []string
	for subj := range info.State.Subjects {
		left = append(left, subj)
	}
	for _, subj := range left {
		if strings.HasSuffix(subj, ".r1") {
			t.Errorf("task %s of the purged run is still queued", subj)
		}
	}
	if len(left) != 3 {
		t.Errorf("left %v, want the 3 tasks of r2", left)
	}
}

func TestMaxDeliveriesAdvisoryCaptured(t *testing.T) {
	ctx := t.Context()
	e := startServer(t, t.TempDir())
	_, js := connect(t, e)
	cfg := Config{AckWait: 100 * time.Millisecond, MaxDeliver: 1}.WithDefaults()
	if err := Provision(ctx, js, cfg); err != nil {
		t.Fatalf("Provision: %v", err)
	}
	cons, err := WorkerConsumer(ctx, js, cfg, "static", "default", 1)
	if err != nil {
		t.Fatalf("WorkerConsumer: %v", err)
	}
	if _, err := js.Publish(ctx, cfg.Names.Task("static", "default", "r1"), []byte("t")); err != nil {
		t.Fatalf("publish: %v", err)
	}
	// Take the task and never ack it, like a worker killed mid-stage.
	batch, err := cons.Fetch(1)
	if err != nil {
		t.Fatalf("fetch: %v", err)
	}
	taken := 0
	for range batch.Messages() {
		taken++
	}
	if taken != 1 {
		t.Fatalf("fetched %d tasks, want 1", taken)
	}

	adv, err := js.CreateConsumer(ctx, cfg.Names.AdvisoryStream(), jetstream.ConsumerConfig{AckPolicy: jetstream.AckNonePolicy})
	if err != nil {
		t.Fatalf("advisory consumer: %v", err)
	}
	// Next blocks until the server's ack timer expires the delivery and publishes the advisory.
	m, err := adv.Next(jetstream.FetchMaxWait(30 * time.Second))
	if err != nil {
		t.Fatalf("no max-deliveries advisory captured: %v", err)
	}
	if !strings.HasPrefix(m.Subject(), "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.SLUICE_TASKS.") {
		t.Fatalf("captured %s", m.Subject())
	}
	if !strings.Contains(string(m.Data()), `"consumer":"workers_static_default"`) {
		t.Fatalf("advisory %s does not name the consumer", m.Data())
	}
}
