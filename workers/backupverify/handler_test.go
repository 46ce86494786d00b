package backupverify_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	bv "github.com/sluice-ci/sluice/backupverify"
	"github.com/sluice-ci/sluice/backupverify/pgcluster/pgtest"
	"github.com/sluice-ci/sluice/coordinator"
	"github.com/sluice-ci/sluice/internal/bus/bustest"
	sluicev1 "github.com/sluice-ci/sluice/proto/sluice/v1"
	"github.com/sluice-ci/sluice/workers"
	bvworker "github.com/sluice-ci/sluice/workers/backupverify"
	"github.com/sluice-ci/sluice/workers/workertest"
)

const (
	kind = sluicev1.StageKind_STAGE_KIND_BACKUP_VERIFY
	// waitLimit bounds every wait for a result; a healthy stage takes a fraction of it.
	waitLimit = 60 * time.Second
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

const schema = `
CREATE TABLE public.customers (id bigint PRIMARY KEY, email text NOT NULL);
CREATE TABLE public.orders (id bigint PRIMARY KEY, customer_id bigint NOT NULL REFERENCES public.customers (id), total numeric(10,2) NOT NULL);
INSERT INTO public.customers SELECT g, 'c' || g || '@example.com' FROM generate_series(1, 100) g;
INSERT INTO public.orders SELECT g, 1 + g % 100, g * 1.5 FROM generate_series(1, 500) g;`

// database returns a fresh database with the test schema and its baseline as JSON.
func database(t *testing.T) (dsn string, baseline []byte) {
	t.Helper()
	dsn = pgtest.Database(t, pgtest.Cluster(t), "")
	pgtest.Exec(t, dsn, schema)
	b, err := bv.Capture(t.Context(), dsn, bv.CaptureOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := b.Encode(&buf); err != nil {
		t.Fatal(err)
	}
	return dsn, buf.Bytes()
}

// secrets is the worker's environment as the handler sees it.
type secrets struct {
	mu sync.Mutex
	m  map[string]string
}

func (s *secrets) set(k, v string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[k] = v
}

func (s *secrets) lookup(k string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.m[k]
	return v, ok
}

// harness is a real in-process server with a real worker serving backup-verify tasks.
// harness is a real worker serving the kinds under test, with secrets the tests set.
type harness struct {
	*workertest.Fleet
	secrets *secrets
}

// granted are the worker's secrets the tests' pipelines name.
var granted = []string{"DB_CORRUPT", "DB_DOWN", "DB_DROP", "DB_ESCAPE", "DB_NEWER", "DB_NOFILE", "DB_NOT_SET", "DB_OK", "DB_RESTORE", "DB_ROWS", "SHOP_DATABASE_URL"}

func startWorker(t *testing.T, reg func(*secrets) *workers.Registry, kinds ...sluicev1.StageKind) *harness {
	t.Helper()
	s := &secrets{m: map[string]string{}}
	grants := &workers.Secrets{LookupEnv: s.lookup}
	for _, name := range granted {
		grants.Grants = append(grants.Grants, workers.SecretGrant{Name: name})
	}
	return &harness{Fleet: workertest.StartConfig(t, workers.Config{Secrets: grants}, reg(s), kinds...), secrets: s}
}

// handlerRegistry registers the handler under test, restoring into the shared cluster.
func handlerRegistry(t *testing.T) func(*secrets) *workers.Registry {
	return func(s *secrets) *workers.Registry {
		r := workers.NewRegistry()
		r.Register(kind, bvworker.Handler{ScratchDSN: pgtest.Cluster(t).DSN("postgres")})
		return r
	}
}

// run queues a backup-verify task the way the coordinator does and returns its final result.
func (h *harness) run(t *testing.T, run string, spec *sluicev1.BackupVerifySpec, digest string) *sluicev1.Result {
	t.Helper()
	return h.Run(t, &sluicev1.Task{
		RunId: run, Pipeline: "shop", Stage: "backup", Kind: kind, SourceDigest: digest,
		Spec: &sluicev1.StageSpec{Name: "backup", Kind: kind, BackupVerify: spec},
	})
}

func freeDSN(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return fmt.Sprintf("postgres://app:secretpw@%s/shop?sslmode=disable", addr)
}

func TestBackupVerifyStage(t *testing.T) {
	h := startWorker(t, handlerRegistry(t), kind)
	newer := `{"format": "sluice.backupverify.baseline", "version": 9, "tables": []}`
	tests := []struct {
		name string
		// setup prepares the database and the source; it returns the spec and the files.
		setup   func(t *testing.T, dsn string, baseline []byte) (*sluicev1.BackupVerifySpec, map[string][]byte)
		outcome sluicev1.Outcome
		message []string   // in the result's message
		finding *[3]string // rule, table, column of a finding the result must carry
		arts    []string
	}{
		{name: "live database matches its baseline", outcome: sluicev1.Outcome_OUTCOME_PASSED,
			message: []string{"verify: 2 tables match the baseline"},
			arts:    []string{bvworker.ArtifactText, bvworker.ArtifactVerify},
			setup: func(t *testing.T, dsn string, b []byte) (*sluicev1.BackupVerifySpec, map[string][]byte) {
				return &sluicev1.BackupVerifySpec{DsnEnv: "DB_OK", Baseline: "backup/baseline.json"}, map[string][]byte{"backup/baseline.json": b}
			}},
		{name: "destructive migration fails naming table and column", outcome: sluicev1.Outcome_OUTCOME_FAILED,
			message: []string{"verify failed", "column public.orders.total is missing"},
			finding: &[3]string{bv.RuleColumnMissing, "public.orders", "total"},
			arts:    []string{bvworker.ArtifactText, bvworker.ArtifactVerify},
			setup: func(t *testing.T, dsn string, b []byte) (*sluicev1.BackupVerifySpec, map[string][]byte) {
				pgtest.Exec(t, dsn, "ALTER TABLE public.orders DROP COLUMN total")
				return &sluicev1.BackupVerifySpec{DsnEnv: "DB_DROP", Baseline: "backup/baseline.json"}, map[string][]byte{"backup/baseline.json": b}
			}},
		{name: "rows dropped beyond max_drop_pct", outcome: sluicev1.Outcome_OUTCOME_FAILED,
			message: []string{"table public.orders has 400 rows, 20.0% fewer than the baseline's 500 (at most 5% may go)"},
			finding: &[3]string{bv.RuleRowsDropped, "public.orders", ""},
			arts:    []string{bvworker.ArtifactText, bvworker.ArtifactVerify},
			setup: func(t *testing.T, dsn string, b []byte) (*sluicev1.BackupVerifySpec, map[string][]byte) {
				pgtest.Exec(t, dsn, "DELETE FROM public.orders WHERE id % 5 = 0")
				return &sluicev1.BackupVerifySpec{DsnEnv: "DB_ROWS", Baseline: "backup/baseline.json", MaxDropPct: 5},
					map[string][]byte{"backup/baseline.json": b}
			}},
		{name: "restore: the dump restores and matches", outcome: sluicev1.Outcome_OUTCOME_PASSED,
			message: []string{"restore-verify: the dump restores: 2 tables checked"},
			arts:    []string{bvworker.ArtifactText, bvworker.ArtifactVerify, bvworker.ArtifactRestoreVerify},
			setup: func(t *testing.T, dsn string, b []byte) (*sluicev1.BackupVerifySpec, map[string][]byte) {
				return &sluicev1.BackupVerifySpec{DsnEnv: "DB_RESTORE", Baseline: "backup/baseline.json", Restore: true},
					map[string][]byte{"backup/baseline.json": b}
			}},
		{name: "a corrupt dump fails the stage", outcome: sluicev1.Outcome_OUTCOME_FAILED,
			message: []string{"restore-verify failed", "the dump cannot be read", "truncated or corrupt"},
			finding: &[3]string{bv.RuleDumpUnreadable, "", ""},
			arts:    []string{bvworker.ArtifactText, bvworker.ArtifactVerify, bvworker.ArtifactRestoreVerify},
			setup: func(t *testing.T, dsn string, b []byte) (*sluicev1.BackupVerifySpec, map[string][]byte) {
				return &sluicev1.BackupVerifySpec{DsnEnv: "DB_CORRUPT", Baseline: "backup/baseline.json", Dump: "backup/latest.dump"},
					map[string][]byte{"backup/baseline.json": b, "backup/latest.dump": []byte("PGDMP\x01\x0e\x00 truncated")}
			}},
		{name: "secret not in the worker's environment", outcome: sluicev1.Outcome_OUTCOME_ERROR,
			message: []string{"DB_NOT_SET (granted, but DB_NOT_SET is not set in the worker's environment)"},
			setup: func(t *testing.T, dsn string, b []byte) (*sluicev1.BackupVerifySpec, map[string][]byte) {
				return &sluicev1.BackupVerifySpec{DsnEnv: "DB_NOT_SET", Baseline: "backup/baseline.json"}, map[string][]byte{"backup/baseline.json": b}
			}},
		{name: "unreachable server", outcome: sluicev1.Outcome_OUTCOME_ERROR,
			message: []string{"cannot reach PostgreSQL", "connection refused"},
			setup: func(t *testing.T, dsn string, b []byte) (*sluicev1.BackupVerifySpec, map[string][]byte) {
				h.secrets.set("DB_DOWN", freeDSN(t))
				return &sluicev1.BackupVerifySpec{DsnEnv: "DB_DOWN", Baseline: "backup/baseline.json"}, map[string][]byte{"backup/baseline.json": b}
			}},
		{name: "baseline from a newer sluice", outcome: sluicev1.Outcome_OUTCOME_ERROR,
			message: []string{"backup/baseline.json has format version 9", "upgrade sluice"},
			setup: func(t *testing.T, dsn string, b []byte) (*sluicev1.BackupVerifySpec, map[string][]byte) {
				return &sluicev1.BackupVerifySpec{DsnEnv: "DB_NEWER", Baseline: "backup/baseline.json"}, map[string][]byte{"backup/baseline.json": []byte(newer)}
			}},
		{name: "baseline not in the source", outcome: sluicev1.Outcome_OUTCOME_ERROR,
			message: []string{"backup/baseline.json", "is it committed"},
			setup: func(t *testing.T, dsn string, b []byte) (*sluicev1.BackupVerifySpec, map[string][]byte) {
				return &sluicev1.BackupVerifySpec{DsnEnv: "DB_NOFILE", Baseline: "backup/baseline.json"}, map[string][]byte{"README": []byte("x")}
			}},
		{name: "baseline outside the tree", outcome: sluicev1.Outcome_OUTCOME_ERROR,
			message: []string{`backup_verify.baseline "../../etc/passwd" must be a relative path inside the repository`},
			setup: func(t *testing.T, dsn string, b []byte) (*sluicev1.BackupVerifySpec, map[string][]byte) {
				return &sluicev1.BackupVerifySpec{DsnEnv: "DB_ESCAPE", Baseline: "../../etc/passwd"}, map[string][]byte{"README": []byte("x")}
			}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dsn, baseline := database(t)
			spec, files := tt.setup(t, dsn, baseline)
			if _, set := h.secrets.lookup(spec.DsnEnv); !set && spec.DsnEnv != "DB_NOT_SET" {
				h.secrets.set(spec.DsnEnv, dsn)
			}
			res := h.run(t, fmt.Sprintf("run%d", i), spec, h.UploadFiles(t, files))
			if res.GetOutcome() != tt.outcome {
				t.Fatalf("outcome %s, want %s: %s", res.GetOutcome(), tt.outcome, res.GetMessage())
			}
			for _, m := range tt.message {
				if !strings.Contains(res.GetMessage(), m) {
					t.Errorf("message %q does not say %q", res.GetMessage(), m)
				}
			}
			if strings.Contains(res.GetMessage(), "secretpw") || strings.Contains(res.GetMessage(), pgtest.Cluster(t).Password) {
				t.Errorf("message %q shows a password", res.GetMessage())
			}
			if f := tt.finding; f != nil && !hasFinding(res, f[0], f[1], f[2]) {
				t.Errorf("no %s finding on %s.%s among %v", f[0], f[1], f[2], res.GetFindings())
			}
			var got []string
			for _, a := range res.GetArtifacts() {
				got = append(got, a.GetName())
			}
			if strings.Join(got, ",") != strings.Join(tt.arts, ",") {
				t.Errorf("artifacts %v, want %v", got, tt.arts)
			}
			if len(tt.arts) > 1 {
				var r bv.Report
				if err := json.Unmarshal(h.Artifact(t, res, bvworker.ArtifactVerify), &r); err != nil {
					t.Fatalf("verify report artifact: %v", err)
				}
				if r.Format != bv.ReportFormat || r.Check != bv.CheckVerify || len(r.Tables) != 2 {
					t.Errorf("verify report artifact: %+v", r)
				}
			}
		})
	}
}

func hasFinding(res *sluicev1.Result, rule, table, column string) bool {
	for _, f := range res.GetFindings() {
		p := f.GetProperties()
		if f.GetRule() == rule && p["table"] == table && p["column"] == column && f.GetFingerprint() != "" {
			return true
		}
	}
	return false
}

func TestPipelineInDevMode(t *testing.T) {
	work, err := os.MkdirTemp("", "sluice-bv-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(work) })
	// The throwaway cluster's unprivileged user must be able to enter it when tests run as root.
	if err := os.Chmod(work, 0o755); err != nil {
		t.Fatal(err)
	}
	h := startWorker(t, func(s *secrets) *workers.Registry {
		r := workers.DefaultRegistry()
		r.Register(kind, bvworker.Handler{WorkDir: work})
		return r
	}, kind, sluicev1.StageKind_STAGE_KIND_STATIC)
	coord, err := coordinator.New(h.Env.NC, coordinator.Config{Names: h.Env.Config.Names, Bus: h.Env.Config, Logger: bustest.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := coord.Run(ctx); err != nil {
			t.Errorf("coordinator: %v", err)
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	select {
	case <-coord.Ready():
	case <-time.After(waitLimit):
		t.Fatal("coordinator not ready")
	}
	client := coordinator.NewClient(h.Env.NC, h.Env.Config.Names)

	dsn, baseline := database(t)
	h.secrets.set("SHOP_DATABASE_URL", dsn)
	digest := h.UploadFiles(t, map[string][]byte{"backup/baseline.json": baseline})
	pipeline := `version: 1
name: shop
stages:
  test: {kind: static, run: ["true"]}
  backup:
    kind: backup-verify
    needs: [test]
    backup_verify: {dsn_env: SHOP_DATABASE_URL, baseline: backup/baseline.json, restore: true, min_rows: 1}
`
	submit := func() *sluicev1.RunState {
		t.Helper()
		st, err := client.Submit(t.Context(), &sluicev1.SubmitRunRequest{SpecYaml: pipeline, File: "pipeline.yaml", SourceDigest: digest, Ref: "main"})
		if err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(2 * waitLimit)
		for time.Now().Before(deadline) {
			if st, err = client.Get(t.Context(), st.GetId()); err == nil && st.GetStatus().Terminal() {
				return st
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatalf("run %s did not finish: %v", st.GetId(), st)
		return nil
	}
	stage := func(st *sluicev1.RunState) *sluicev1.StageState {
		for _, s := range st.GetStages() {
			if s.GetName() == "backup" {
				return s
			}
		}
		t.Fatal("no backup stage")
		return nil
	}

	st := submit()
	if st.GetStatus() != sluicev1.RunStatus_RUN_STATUS_PASSED {
		t.Fatalf("run %s: %s", st.GetStatus(), stage(st).GetMessage())
	}
	if n := len(stage(st).GetArtifacts()); n != 3 {
		t.Errorf("backup stage stored %d artifacts, want the text report and two JSON reports", n)
	}
	left, err := os.ReadDir(work)
	if err != nil || len(left) != 0 {
		t.Errorf("throwaway cluster left behind in %s: %v %v", work, left, err)
	}

	pgtest.Exec(t, dsn, "DROP TABLE public.orders")
	st = submit()
	if st.GetStatus() != sluicev1.RunStatus_RUN_STATUS_FAILED {
		t.Fatalf("after DROP TABLE: run %s, want failed", st.GetStatus())
	}
	if msg := stage(st).GetMessage(); !strings.Contains(msg, "table public.orders is missing") {
		t.Errorf("backup stage message %q does not name the dropped table", msg)
	}
}
