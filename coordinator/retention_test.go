package coordinator

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluice-ci/sluice/internal/bus"
	"github.com/sluice-ci/sluice/internal/bus/bustest"
	sluicev1 "github.com/sluice-ci/sluice/proto/sluice/v1"
)

// A finished run's state leaves the runs bucket RunsMaxAge after its last write, with the
// seal naming it, and the coordinator forgets it; a run still going stays, however long ago it was last written.
func TestPlannerForgetsFinishedRunsAfterTheirRetention(t *testing.T) {
	const keep = 2 * time.Second
	env := bustest.Start(t, bus.Config{RunsMaxAge: keep})
	startCoordinator(t, env)
	startWorker(t, env, func(task *sluicev1.Task) *sluicev1.Result {
		if task.GetStage() == "held" {
			return nil
		}
		return pass(task)
	})
	active := submit(t, env, "main", stage("held"))
	finished := submit(t, env, "main", stage("a"))
	waitRun(t, env, finished.GetId(), sluicev1.RunStatus_RUN_STATUS_PASSED)
	waitFor(t, "a seal naming the finished run", func() bool {
		_, ok := sealedInBucket(t, env)[finished.GetId()]
		return ok
	})

	kv, err := env.JS.KeyValue(t.Context(), env.Config.Names.RunsBucket())
	if err != nil {
		t.Fatal(err)
	}
	client := NewClient(env.NC, env.Config.Names)
	listed := func() []string {
		sums, err := client.List(t.Context(), &sluicev1.ListRunsRequest{})
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, s := range sums {
			ids = append(ids, s.GetId())
		}
		return ids
	}
	if ids := listed(); !slices.Contains(ids, finished.GetId()) {
		t.Fatalf("the finished run is not listed before its retention ends: %v", ids)
	}
	waitFor(t, "the finished run to expire", func() bool {
		_, err := kv.Get(t.Context(), finished.GetId())
		return errors.Is(err, jetstream.ErrKeyNotFound)
	})
	// The seal naming it goes too: seals must not pile up in the bucket.
	waitFor(t, "the finished run's seal to expire", func() bool {
		_, ok := sealedInBucket(t, env)[finished.GetId()]
		return !ok
	})
	waitFor(t, "the coordinator to forget the finished run", func() bool {
		_, err := client.Get(t.Context(), finished.GetId())
		return errors.Is(err, ErrNotFound) && !slices.Contains(listed(), finished.GetId())
	})

	e, err := kv.Get(t.Context(), active.GetId())
	if err != nil {
		t.Fatalf("the active run's state: %v", err)
	}
	if age := time.Since(e.Created()); age < keep {
		t.Fatalf("the active run was written %s ago, within the %s retention: the test proves nothing", age, keep)
	}
	st, err := client.Get(t.Context(), active.GetId())
	if err != nil || st.GetStatus() != sluicev1.RunStatus_RUN_STATUS_RUNNING {
		t.Fatalf("the active run after the retention: %s, %v; want it running", describe(st), err)
	}
	if ids := listed(); !slices.Contains(ids, active.GetId()) {
		t.Errorf("the active run is no longer listed: %v", ids)
	}
}

// Per-test timings and artifacts carry the configured retention; a bucket provisioned by an
// earlier version, without per-message TTLs, takes them on the next provisioning.
func TestProvisionSetsRetention(t *testing.T) {
	env := bustest.Start(t, bus.Config{})
	ctx := t.Context()
	if err := env.JS.DeleteKeyValue(ctx, env.Config.Names.RunsBucket()); err != nil {
		t.Fatal(err)
	}
	if _, err := env.JS.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: env.Config.Names.RunsBucket(), History: 1}); err != nil {
		t.Fatal(err)
	}
	cfg := env.Config
	cfg.TimingsMaxAge, cfg.ArtifactsMaxAge = 3*time.Hour, 5*time.Hour
	if err := bus.Provision(ctx, env.JS, cfg); err != nil {
		t.Fatal(err)
	}
	runs, err := env.JS.KeyValue(ctx, cfg.Names.RunsBucket())
	if err != nil {
		t.Fatal(err)
	}
	rs, err := runs.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rs.LimitMarkerTTL() != bus.RunsMarkerTTL || rs.TTL() != 0 {
		t.Errorf("runs bucket: marker TTL %s and bucket TTL %s, want %s and none (active runs never expire)", rs.LimitMarkerTTL(), rs.TTL(), bus.RunsMarkerTTL)
	}
	timings, err := env.JS.KeyValue(ctx, cfg.Names.TimingsBucket())
	if err != nil {
		t.Fatal(err)
	}
	if ts, err := timings.Status(ctx); err != nil || ts.TTL() != cfg.TimingsMaxAge {
		t.Errorf("timings bucket TTL: %v (%v), want %s", ts.TTL(), err, cfg.TimingsMaxAge)
	}
	artifacts, err := env.JS.ObjectStore(ctx, cfg.Names.ArtifactsStore())
	if err != nil {
		t.Fatal(err)
	}
	if as, err := artifacts.Status(ctx); err != nil || as.TTL() != cfg.ArtifactsMaxAge {
		t.Errorf("artifacts store TTL: %v (%v), want %s", as.TTL(), err, cfg.ArtifactsMaxAge)
	}
}
