// Package workertest runs a kind's handler the way the fleet does, for the handler's tests: a
// real in-process NATS server, one real worker serving the kind, tasks published as the
// coordinator publishes them, and the final results, logs and artifacts read back.
package workertest

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-ci/sluice/internal/bus"
	"github.com/sluice-ci/sluice/internal/bus/bustest"
	"github.com/sluice-ci/sluice/internal/source"
	"github.com/sluice-ci/sluice/internal/testdir"
	sluicev1 "github.com/sluice-ci/sluice/proto/sluice/v1"
	"github.com/sluice-ci/sluice/workers"
)

// WaitLimit bounds the wait for a task's final result; a healthy task takes a fraction of it.
const WaitLimit = 60 * time.Second

// Fleet is a provisioned server with one worker on it.
type Fleet struct {
	Env *bustest.Env
}

// Start starts a server and a worker serving kinds with reg's handlers; both stop when the
// test ends, and the worker must stop without error.
func Start(tb testing.TB, reg *workers.Registry, kinds ...sluicev1.StageKind) *Fleet {
	tb.Helper()
	return StartConfig(tb, workers.Config{}, reg, kinds...)
}

// StartConfig is Start with a worker configured by c (its bus, kinds, registry,
// directories and logger are the fleet's).
func StartConfig(tb testing.TB, c workers.Config, reg *workers.Registry, kinds ...sluicev1.StageKind) *Fleet {
	tb.Helper()
	env := bustest.Start(tb, bus.Config{})
	nc, _ := bustest.Connect(tb, env.Server.ClientURL())
	c.Bus, c.Kinds, c.Registry, c.ID = env.Config, kinds, reg, "w-"+tb.Name()
	c.WorkDir, c.CacheDir, c.Logger = testdir.Reachable(tb), tb.TempDir(), bustest.Logger()
	// Without root nothing can isolate steps: the tests still run, as the user's own.
	c.UnsafeSharedUser = os.Geteuid() != 0
	w, err := workers.New(nc, c)
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	tb.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			tb.Errorf("worker Run: %v", err)
		}
	})
	return &Fleet{Env: env}
}

// UploadDir bundles dir as a run's source tree and returns its digest.
func (f *Fleet) UploadDir(tb testing.TB, dir string) string {
	tb.Helper()
	store, err := f.Env.JS.ObjectStore(tb.Context(), f.Env.Config.Names.SourcesStore())
	if err != nil {
		tb.Fatal(err)
	}
	digest, err := source.Upload(tb.Context(), store, dir, source.DefaultLimits())
	if err != nil {
		tb.Fatalf("upload %s as the source: %v", dir, err)
	}
	return digest
}

// UploadFiles writes files (slash path -> content) into a fresh tree and uploads it.
func (f *Fleet) UploadFiles(tb testing.TB, files map[string][]byte) string {
	tb.Helper()
	dir := tb.TempDir()
	for name, data := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	return f.UploadDir(tb, dir)
}

// Run publishes task as the coordinator does (pool, attempt and shard count defaulted) and
// returns its final result.
func (f *Fleet) Run(tb testing.TB, task *sluicev1.Task) *sluicev1.Result {
	tb.Helper()
	if task.Pool == "" {
		task.Pool = workers.DefaultPool
	}
	task.Attempt = max(task.Attempt, 1)
	task.ShardCount = max(task.ShardCount, 1)
	names := f.Env.Config.Names
	cons, err := f.Env.JS.OrderedConsumer(tb.Context(), names.ResultsStream(),
		jetstream.OrderedConsumerConfig{FilterSubjects: []string{names.RunResults(task.GetRunId())}})
	if err != nil {
		tb.Fatal(err)
	}
	data, err := proto.Marshal(task)
	if err != nil {
		tb.Fatal(err)
	}
	msg := nats.NewMsg(names.Task(task.GetKind().Slug(), task.GetPool(), task.GetRunId()))
	msg.Data = data
	msg.Header.Set(jetstream.MsgIDHeader, bus.TaskID(task))
	if _, err := f.Env.JS.PublishMsg(tb.Context(), msg); err != nil {
		tb.Fatal(err)
	}
	deadline := time.Now().Add(WaitLimit)
	for time.Now().Before(deadline) {
		m, err := cons.Next(jetstream.FetchMaxWait(time.Second))
		if err != nil {
			continue
		}
		res := &sluicev1.Result{}
		if err := proto.Unmarshal(m.Data(), res); err != nil {
			tb.Fatal(err)
		}
		if res.GetPhase() == sluicev1.ResultPhase_RESULT_PHASE_FINAL {
			return res
		}
	}
	tb.Fatalf("no final result for run %s within %s", task.GetRunId(), WaitLimit)
	return nil
}

// Object reads an artifact from the artifacts store.
func (f *Fleet) Object(tb testing.TB, ref *sluicev1.ArtifactRef) []byte {
	tb.Helper()
	store, err := f.Env.JS.ObjectStore(tb.Context(), f.Env.Config.Names.ArtifactsStore())
	if err != nil {
		tb.Fatal(err)
	}
	data, err := store.GetBytes(tb.Context(), ref.GetObject())
	if err != nil {
		tb.Fatalf("artifact %s: %v", ref.GetObject(), err)
	}
	return data
}

// Artifact reads res's artifact named name.
func (f *Fleet) Artifact(tb testing.TB, res *sluicev1.Result, name string) []byte {
	tb.Helper()
	for _, a := range res.GetArtifacts() {
		if a.GetName() == name {
			return f.Object(tb, a)
		}
	}
	tb.Fatalf("result has no artifact %s: %v", name, res.GetArtifacts())
	return nil
}

// Logs returns the stored output of one stage of a run, every stream in order.
func (f *Fleet) Logs(tb testing.TB, run, stage string) string {
	tb.Helper()
	names := f.Env.Config.Names
	var b strings.Builder
	for _, m := range bustest.Stored(tb, f.Env.JS, names.LogsStream(), names.Log(run, stage)) {
		c := &sluicev1.LogChunk{}
		if err := proto.Unmarshal(m.Data(), c); err != nil {
			tb.Fatal(err)
		}
		b.Write(c.GetData())
	}
	return b.String()
}
