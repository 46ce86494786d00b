package contract_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-ci/sluice/examples/app"
	"github.com/sluice-ci/sluice/internal/bus"
	"github.com/sluice-ci/sluice/internal/bus/bustest"
	"github.com/sluice-ci/sluice/internal/source"
	sluicev1 "github.com/sluice-ci/sluice/proto/sluice/v1"
	"github.com/sluice-ci/sluice/workers"
	"github.com/sluice-ci/sluice/workers/contract"
)

const kind = sluicev1.StageKind_STAGE_KIND_CONTRACT

// waitLimit bounds the wait for a result; a healthy run takes a fraction of it.
const waitLimit = 30 * time.Second

// fleet is a real in-process NATS server with one contract worker on it.
type fleet struct {
	env    *bustest.Env
	digest string // the example app's source bundle
}

func startFleet(t *testing.T) *fleet {
	t.Helper()
	env := bustest.Start(t, bus.Config{})
	store, err := env.JS.ObjectStore(t.Context(), env.Config.Names.SourcesStore())
	if err != nil {
		t.Fatal(err)
	}
	digest, err := source.Upload(t.Context(), store, "../../examples/app", source.DefaultLimits())
	if err != nil {
		t.Fatalf("upload the example app as the source: %v", err)
	}
	reg := workers.NewRegistry()
	reg.Register(kind, contract.Handler{})
	nc, _ := bustest.Connect(t, env.Server.ClientURL())
	w, err := workers.New(nc, workers.Config{
		Bus: env.Config, Kinds: []sluicev1.StageKind{kind}, Registry: reg, ID: "contract-test",
		WorkDir: t.TempDir(), CacheDir: t.TempDir(), Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("worker Run: %v", err)
		}
	})
	return &fleet{env: env, digest: digest}
}

// run queues a contract task as the coordinator does and returns its final result.
func (f *fleet) run(t *testing.T, runID string, spec *sluicev1.ContractSpec) *sluicev1.Result {
	t.Helper()
	names := f.env.Config.Names
	task := &sluicev1.Task{
		RunId: runID, Pipeline: "web", Stage: "contract", Kind: kind, Pool: workers.DefaultPool,
		Attempt: 1, ShardCount: 1, SourceDigest: f.digest,
		Spec: &sluicev1.StageSpec{Name: "contract", Kind: kind, Contract: spec},
	}
	data, err := proto.Marshal(task)
	if err != nil {
		t.Fatal(err)
	}
	msg := nats.NewMsg(names.Task(kind.Slug(), workers.DefaultPool, runID))
	msg.Data = data
	msg.Header.Set(jetstream.MsgIDHeader, bus.TaskMsgID(runID, "contract", 1, 0, 1))
	if _, err := f.env.JS.PublishMsg(t.Context(), msg); err != nil {
		t.Fatal(err)
	}
	cons, err := f.env.JS.OrderedConsumer(t.Context(), names.ResultsStream(),
		jetstream.OrderedConsumerConfig{FilterSubjects: []string{names.Result(runID)}})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(waitLimit)
	for time.Now().Before(deadline) {
		m, err := cons.Next(jetstream.FetchMaxWait(time.Second))
		if err != nil {
			continue
		}
		res := &sluicev1.Result{}
		if err := proto.Unmarshal(m.Data(), res); err != nil {
			t.Fatal(err)
		}
		if res.GetPhase() == sluicev1.ResultPhase_RESULT_PHASE_FINAL {
			return res
		}
	}
	t.Fatalf("no final result for run %s within %s", runID, waitLimit)
	return nil
}

func (f *fleet) artifact(t *testing.T, res *sluicev1.Result, name string) string {
	t.Helper()
	for _, a := range res.GetArtifacts() {
		if a.GetName() != name {
			continue
		}
		store, err := f.env.JS.ObjectStore(t.Context(), f.env.Config.Names.ArtifactsStore())
		if err != nil {
			t.Fatal(err)
		}
		r, err := store.Get(t.Context(), a.GetObject())
		if err != nil {
			t.Fatalf("get artifact %s: %v", a.GetObject(), err)
		}
		defer r.Close()
		b, err := io.ReadAll(r)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	t.Fatalf("result has no artifact %s: %v", name, res.GetArtifacts())
	return ""
}

func TestHandlerThroughWorker(t *testing.T) {
	f := startFleet(t)
	good := httptest.NewServer(app.NewHandler("v1"))
	defer good.Close()
	bad := httptest.NewServer(drifted(func(path string, b map[string]any) {
		if path == "POST /api/payments" {
			b["status"] = "ok"
		}
	}))
	defer bad.Close()

	tests := []struct {
		name        string
		spec        *sluicev1.ContractSpec
		wantOutcome sluicev1.Outcome
		wantMsg     string
		wantFinding string // a finding's message holds it
		wantJUnit   string
	}{
		{"passes", &sluicev1.ContractSpec{Target: good.URL, Files: []string{"contracts/*.yaml"}},
			sluicev1.Outcome_OUTCOME_PASSED, "3 contracts passed", "", `failures="0"`},
		{"drift fails naming the field", &sluicev1.ContractSpec{Target: bad.URL, Files: []string{"contracts/payments.yaml"}},
			sluicev1.Outcome_OUTCOME_FAILED, `1 of 2 contracts failed: payments API, step "create a payment": body.status`,
			`body.status: want one of "succeeded", "pending", "failed", got "ok"`, `failures="1"`},
		{"invalid pattern", &sluicev1.ContractSpec{Target: good.URL, Files: []string{"contracts/nope-*.yaml"}},
			sluicev1.Outcome_OUTCOME_FAILED, `"contracts/nope-*.yaml" matches no file`, "", ""},
		{"no target", &sluicev1.ContractSpec{Files: []string{"contracts/*.yaml"}},
			sluicev1.Outcome_OUTCOME_ERROR, "no target", "", ""},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := f.run(t, "run"+string(rune('a'+i)), tt.spec)
			if res.GetOutcome() != tt.wantOutcome || !strings.Contains(res.GetMessage(), tt.wantMsg) {
				t.Fatalf("result %s %q, want %s containing %q", res.GetOutcome(), res.GetMessage(), tt.wantOutcome, tt.wantMsg)
			}
			if tt.wantFinding != "" {
				found := false
				for _, fd := range res.GetFindings() {
					found = found || (strings.Contains(fd.GetMessage(), tt.wantFinding) && fd.GetFile() == "contracts/payments.yaml" && fd.GetLine() > 0)
				}
				if !found {
					t.Errorf("no finding in contracts/payments.yaml saying %q: %v", tt.wantFinding, res.GetFindings())
				}
			}
			if tt.wantJUnit != "" {
				if junit := f.artifact(t, res, contract.JUnitArtifact); !strings.Contains(junit, tt.wantJUnit) {
					t.Errorf("JUnit artifact lacks %s:\n%s", tt.wantJUnit, junit)
				}
				f.artifact(t, res, contract.ReportArtifact)
			}
		})
	}
}

// Keep the refused-connection path covered end to end: the stage fails with the cause.
func TestHandlerRefusedTarget(t *testing.T) {
	f := startFleet(t)
	srv := httptest.NewServer(http.NotFoundHandler())
	target := srv.URL
	srv.Close()
	res := f.run(t, "refused", &sluicev1.ContractSpec{Target: target, Files: []string{"contracts/health.yaml"}})
	if res.GetOutcome() != sluicev1.Outcome_OUTCOME_FAILED || !strings.Contains(res.GetMessage(), "connection refused") {
		t.Errorf("result %s %q, want FAILED saying connection refused", res.GetOutcome(), res.GetMessage())
	}
}
