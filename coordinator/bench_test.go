package coordinator_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluice-ci/sluice/internal/bus"
	"github.com/sluice-ci/sluice/internal/bus/bustest"
	sluicev1 "github.com/sluice-ci/sluice/proto/sluice/v1"
	"github.com/sluice-ci/sluice/workers"
)

// The benchmarks print Sluice's numbers beside the floor they cannot beat, measured on the
// same server in the same run: a synchronous JetStream publish, and a raw task -> result
// round trip (publish to a work queue, a pull consumer takes it and publishes a result, a
// second consumer receives it).

func BenchmarkFloorSyncPublish(b *testing.B) {
	env := bustest.Start(b, bus.Config{})
	if _, err := env.JS.CreateStream(b.Context(), jetstream.StreamConfig{Name: "FLOOR", Subjects: []string{"floor.>"}, Storage: jetstream.FileStorage}); err != nil {
		b.Fatal(err)
	}
	data := make([]byte, 256)
	lat := make([]time.Duration, 0, b.N)
	for b.Loop() {
		t := time.Now()
		if _, err := env.JS.Publish(b.Context(), "floor.x", data); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t))
	}
	reportPercentiles(b, "publish", lat)
}

func BenchmarkFloorRoundTrip(b *testing.B) {
	env := bustest.Start(b, bus.Config{})
	ctx := b.Context()
	for _, cfg := range []jetstream.StreamConfig{
		{Name: "FLOOR_T", Subjects: []string{"floor.t.>"}, Retention: jetstream.WorkQueuePolicy, Storage: jetstream.FileStorage},
		{Name: "FLOOR_R", Subjects: []string{"floor.r.>"}, Storage: jetstream.FileStorage},
	} {
		if _, err := env.JS.CreateStream(ctx, cfg); err != nil {
			b.Fatal(err)
		}
	}
	tasks, err := env.JS.CreateConsumer(ctx, "FLOOR_T", jetstream.ConsumerConfig{Durable: "w", AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		b.Fatal(err)
	}
	results, err := env.JS.CreateConsumer(ctx, "FLOOR_R", jetstream.ConsumerConfig{Durable: "c", AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		b.Fatal(err)
	}
	got := make(chan struct{}, 1)
	wc, err := tasks.Consume(func(m jetstream.Msg) {
		_, _ = env.JS.Publish(ctx, "floor.r.x", m.Data())
		_ = m.Ack()
	})
	if err != nil {
		b.Fatal(err)
	}
	defer wc.Stop()
	rc, err := results.Consume(func(m jetstream.Msg) { _ = m.Ack(); got <- struct{}{} })
	if err != nil {
		b.Fatal(err)
	}
	defer rc.Stop()
	data := make([]byte, 256)
	lat := make([]time.Duration, 0, b.N)
	for b.Loop() {
		t := time.Now()
		if _, err := env.JS.Publish(ctx, "floor.t.x", data); err != nil {
			b.Fatal(err)
		}
		<-got
		lat = append(lat, time.Since(t))
	}
	reportPercentiles(b, "roundtrip", lat)
}

// noopRecorder is a worker handler that passes at once and records how long each task took
// from the coordinator's decision to the worker holding it.
type noopRecorder struct {
	mu  sync.Mutex
	lat []time.Duration
}

func (n *noopRecorder) Handle(_ context.Context, t *workers.Task) *sluicev1.Result {
	d := time.Since(t.Task.GetDispatchedAt().AsTime())
	n.mu.Lock()
	n.lat = append(n.lat, d)
	n.mu.Unlock()
	return &sluicev1.Result{Outcome: sluicev1.Outcome_OUTCOME_PASSED}
}

func noopFleet(b *testing.B) (*fleet, *noopRecorder) {
	rec := &noopRecorder{}
	reg := workers.NewRegistry()
	reg.Register(sluicev1.StageKind_STAGE_KIND_STATIC, rec)
	return startFleet(b, 128, reg), rec
}

// noopSpec is a chain of stages; their step is never run (the noop handler answers), but
// a spec without steps does not validate.
func noopSpec(stages int) *sluicev1.PipelineSpec {
	p := &sluicev1.PipelineSpec{Version: 1, Name: "bench"}
	for i := range stages {
		s := &sluicev1.StageSpec{Name: fmt.Sprintf("s%d", i), Kind: sluicev1.StageKind_STAGE_KIND_STATIC, Shards: 1, Run: []string{"true"}}
		if i > 0 {
			s.Needs = []string{fmt.Sprintf("s%d", i-1)}
		}
		p.Stages = append(p.Stages, s)
	}
	return p
}

// runWatcher signals run ends from the events' core subjects, so waiting costs no polling.
// Events are delivered at least once (a coordinator that dies after publishing publishes
// again), so a repeated run end is ignored.
func runWatcher(b *testing.B, f *fleet) (wait func(id string), stop func()) {
	var mu sync.Mutex
	waiters := map[string]chan struct{}{}
	ended := map[string]bool{}
	ch := func(id string) chan struct{} {
		mu.Lock()
		defer mu.Unlock()
		c, ok := waiters[id]
		if !ok {
			c = make(chan struct{})
			waiters[id] = c
		}
		return c
	}
	sub, err := f.env.NC.Subscribe(f.env.Config.Names.Prefix+".event.*.*.run.>", func(m *nats.Msg) {
		if m.Subject[len(m.Subject)-len("submitted"):] == "submitted" {
			return
		}
		id := m.Header.Get("ce-subject")
		c := ch(id)
		mu.Lock()
		defer mu.Unlock()
		if !ended[id] {
			ended[id] = true
			close(c)
		}
	})
	if err != nil {
		b.Fatal(err)
	}
	return func(id string) { <-ch(id) }, func() { _ = sub.Unsubscribe() }
}

// BenchmarkDispatch: single-stage no-op runs, 100 in flight: dispatch latency (stage ready
// -> worker holds the task) and sustained stages per second.
func BenchmarkDispatch(b *testing.B) { sustain(b, 1, 100) }

// BenchmarkSevenStageDAG: one 7-stage no-op chain at a time, submit to run.passed.
func BenchmarkSevenStageDAG(b *testing.B) {
	f, _ := noopFleet(b)
	wait, stop := runWatcher(b, f)
	defer stop()
	spec := noopSpec(7)
	lat := make([]time.Duration, 0, b.N)
	for b.Loop() {
		t := time.Now()
		st, err := f.client.Submit(b.Context(), &sluicev1.SubmitRunRequest{Spec: spec})
		if err != nil {
			b.Fatal(err)
		}
		wait(st.GetId())
		lat = append(lat, time.Since(t))
	}
	reportPercentiles(b, "run", lat)
}

// BenchmarkThroughput: 7-stage no-op chains, 100 runs in flight: stages per second.
func BenchmarkThroughput(b *testing.B) { sustain(b, 7, 100) }

// sustain keeps inflight runs of a no-op chain of the given length going and reports the
// stages per second and the dispatch latency.
func sustain(b *testing.B, stages, inflight int) {
	f, rec := noopFleet(b)
	wait, stop := runWatcher(b, f)
	defer stop()
	sem := make(chan struct{}, inflight)
	var wg sync.WaitGroup
	spec := noopSpec(stages)
	start := time.Now()
	n := 0
	for b.Loop() {
		n++
		sem <- struct{}{}
		st, err := f.client.Submit(b.Context(), &sluicev1.SubmitRunRequest{Spec: spec})
		if err != nil {
			b.Fatal(err)
		}
		wg.Go(func() { wait(st.GetId()); <-sem })
	}
	wg.Wait()
	b.ReportMetric(float64(stages*n)/time.Since(start).Seconds(), "stages/s")
	reportPercentiles(b, "dispatch", rec.lat)
}

func reportPercentiles(b *testing.B, name string, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	p := func(q float64) float64 { return float64(lat[int(q*float64(len(lat)-1))].Microseconds()) }
	b.ReportMetric(p(0.50), name+"-p50-us")
	b.ReportMetric(p(0.99), name+"-p99-us")
	b.ReportMetric(0, "ns/op")
}
