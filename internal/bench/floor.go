package bench

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// floor measures what no JetStream application can beat on this server: a synchronous
// publish to a file-store stream, and a task -> result round trip (publish to a work queue,
// a pull consumer takes it and publishes a result, a second consumer receives it).
func floor(ctx context.Context, s *server, o Options, rep *Report) error {
	phase(o, "floor: %d synchronous publishes, %d raw round trips", floorSamples, floorSamples)
	pub, err := FloorPublish(ctx, s.js, s.names.Prefix, floorSamples)
	if err != nil {
		return err
	}
	rt, err := FloorRoundTrip(ctx, s.js, s.names.Prefix, floorSamples)
	if err != nil {
		return err
	}
	rep.FloorPublishP50Us, rep.FloorPublishP99Us = pub.P(0.5), pub.P(0.99)
	rep.FloorRoundtripP50Us, rep.FloorRoundtripP99Us = rt.P(0.5), rt.P(0.99)
	phase(o, "  publish p50 %.0f us, round trip p50 %.0f us", rep.FloorPublishP50Us, rep.FloorRoundtripP50Us)
	return nil
}

// FloorStreams are the streams the floor makes under prefix. They stay until the benchmark
// ends (server.close): nats-server removes an account's emptied store directory in the
// background after a stream is deleted, so deleting the floor's streams just before the
// coordinator creates its own can fail that create ("error creating store for stream").
func FloorStreams(prefix string) []string {
	return []string{prefix + "_FLOOR_PUB", prefix + "_FLOOR_T", prefix + "_FLOOR_R"}
}

// FloorPublish times n synchronous 256-byte publishes to a file-store stream of its own
// (one of FloorStreams, which the caller deletes).
func FloorPublish(ctx context.Context, js jetstream.JetStream, prefix string, n int) (Latencies, error) {
	name := FloorStreams(prefix)[0]
	subj := prefix + ".floor.pub"
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: name, Subjects: []string{subj}, Storage: jetstream.FileStorage}); err != nil {
		return nil, fmt.Errorf("floor stream: %w", err)
	}
	data := make([]byte, 256)
	lat := make(Latencies, 0, n)
	for range n {
		t := time.Now()
		if _, err := js.Publish(ctx, subj, data); err != nil {
			return nil, fmt.Errorf("floor publish: %w", err)
		}
		lat = append(lat, time.Since(t))
	}
	return lat, nil
}

// FloorRoundTrip times n raw task -> result round trips, one at a time, on two file-store
// streams of its own (FloorStreams, which the caller deletes).
func FloorRoundTrip(ctx context.Context, js jetstream.JetStream, prefix string, n int) (Latencies, error) {
	rt, err := startRoundTrips(ctx, js, prefix)
	if err != nil {
		return nil, err
	}
	defer rt.stop()
	return rt.measure(ctx, n)
}

// roundTrips is the floor's round trip, ready to be timed again and again: a pull consumer
// answers each task with a result, which a second consumer receives. Starting it again on
// the same prefix reuses the streams and consumers, whose messages were all acked.
type roundTrips struct {
	js       jetstream.JetStream
	taskSubj string
	got      chan struct{}
	stops    []func()
}

func startRoundTrips(ctx context.Context, js jetstream.JetStream, prefix string) (*roundTrips, error) {
	names := FloorStreams(prefix)
	tasksName, resultsName := names[1], names[2]
	rt := &roundTrips{js: js, taskSubj: prefix + ".floor.t", got: make(chan struct{}, 1)}
	resultSubj := prefix + ".floor.r"
	for _, cfg := range []jetstream.StreamConfig{
		{Name: tasksName, Subjects: []string{rt.taskSubj}, Retention: jetstream.WorkQueuePolicy, Storage: jetstream.FileStorage},
		{Name: resultsName, Subjects: []string{resultSubj}, Storage: jetstream.FileStorage},
	} {
		if _, err := js.CreateStream(ctx, cfg); err != nil {
			return nil, fmt.Errorf("floor stream: %w", err)
		}
	}
	tasks, err := js.CreateConsumer(ctx, tasksName, jetstream.ConsumerConfig{Durable: "w", AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		return nil, fmt.Errorf("floor consumer: %w", err)
	}
	results, err := js.CreateConsumer(ctx, resultsName, jetstream.ConsumerConfig{Durable: "c", AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		return nil, fmt.Errorf("floor consumer: %w", err)
	}
	wc, err := tasks.Consume(func(m jetstream.Msg) {
		_, _ = js.Publish(ctx, resultSubj, m.Data())
		_ = m.Ack()
	})
	if err != nil {
		return nil, fmt.Errorf("floor worker: %w", err)
	}
	rt.stops = append(rt.stops, wc.Stop)
	rc, err := results.Consume(func(m jetstream.Msg) { _ = m.Ack(); rt.got <- struct{}{} })
	if err != nil {
		rt.stop()
		return nil, fmt.Errorf("floor results: %w", err)
	}
	rt.stops = append(rt.stops, rc.Stop)
	return rt, nil
}

func (rt *roundTrips) stop() {
	for _, stop := range rt.stops {
		stop()
	}
}

// measure times n round trips, one at a time.
func (rt *roundTrips) measure(ctx context.Context, n int) (Latencies, error) {
	data := make([]byte, 256)
	lat := make(Latencies, 0, n)
	for range n {
		t := time.Now()
		if _, err := rt.js.Publish(ctx, rt.taskSubj, data); err != nil {
			return nil, fmt.Errorf("floor publish: %w", err)
		}
		select {
		case <-rt.got:
		case <-time.After(10 * time.Second):
			return nil, fmt.Errorf("floor round trip: no result within 10s")
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		lat = append(lat, time.Since(t))
	}
	return lat, nil
}
