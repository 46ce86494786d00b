package bustest

import (
	"fmt"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluice-ci/sluice/internal/bus"
)

func TestStart(t *testing.T) {
	env := Start(t, bus.Config{})
	if _, err := env.JS.Stream(t.Context(), env.Config.Names.TasksStream()); err != nil {
		t.Fatalf("tasks stream: %v", err)
	}
}

func TestClusterReplicated(t *testing.T) {
	ctx := t.Context()
	nodes := Cluster(t, 3)
	_, js := Connect(t, nodes[1].ClientURL())
	cfg := bus.Config{Replicas: 3}.WithDefaults()
	if err := bus.Provision(ctx, js, cfg); err != nil {
		t.Fatalf("provision R3: %v", err)
	}
	for _, name := range []string{cfg.Names.TasksStream(), cfg.Names.EventsStream(), "KV_" + cfg.Names.RunsBucket(), "OBJ_" + cfg.Names.SourcesStore()} {
		s, err := js.Stream(ctx, name)
		if err != nil {
			t.Fatalf("stream %s: %v", name, err)
		}
		if got := s.CachedInfo().Config.Replicas; got != 3 {
			t.Errorf("stream %s replicas = %d, want 3", name, got)
		}
	}
	// A worker is not told the replica count: its consumer takes the stream's.
	cons, err := bus.WorkerConsumer(ctx, js, bus.Config{}, "static", "default", 2)
	if err != nil {
		t.Fatalf("worker consumer on R3 tasks: %v", err)
	}
	if got := len(cons.CachedInfo().Cluster.Replicas) + 1; got != 3 {
		t.Errorf("consumer on %d nodes, want 3", got)
	}
	if _, err := js.Publish(ctx, cfg.Names.Task("static", "default", "r1"), []byte("t")); err != nil {
		t.Fatalf("publish to R3 tasks: %v", err)
	}
	msgs, err := cons.Fetch(1)
	if err != nil {
		t.Fatalf("fetch: %v", err)
	}
	for m := range msgs.Messages() {
		if err := m.DoubleAck(ctx); err != nil {
			t.Fatalf("ack: %v", err)
		}
	}
	if err := msgs.Error(); err != nil && err != jetstream.ErrNoMessages {
		t.Fatalf("fetch: %v", err)
	}
}

// Stored reads all of a large stream of a replicated cluster, through a node that is not
// the stream's leader: the container tier's checker relies on it to see every run's end.
func TestStoredReadsAllOfALargeReplicatedStream(t *testing.T) {
	nodes := Cluster(t, 3)
	_, js := Connect(t, nodes[2].ClientURL())
	if _, err := js.CreateStream(t.Context(), jetstream.StreamConfig{Name: "BIG", Subjects: []string{"big.>"}, Replicas: 3}); err != nil {
		t.Fatal(err)
	}
	const n = 20000
	payload := make([]byte, 512)
	var futures []jetstream.PubAckFuture
	for i := range n {
		f, err := js.PublishAsync(fmt.Sprintf("big.%d", i%1000), payload)
		if err != nil {
			t.Fatal(err)
		}
		futures = append(futures, f)
	}
	for _, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			t.Fatal(err)
		case <-t.Context().Done():
			t.Fatal(t.Context().Err())
		}
	}
	if got := len(Stored(t, js, "BIG", "big.>")); got != n {
		t.Fatalf("Stored read %d of the %d messages", got, n)
	}
	if got := len(Stored(t, js, "BIG", "big.7")); got != n/1000 {
		t.Fatalf("Stored read %d of the %d messages of one subject", got, n/1000)
	}
	if got := Stored(t, js, "BIG", "none.>"); got != nil {
		t.Fatalf("Stored read %d messages of a subject with none", len(got))
	}
}
