package backupverify_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-ci/sluice/backupverify"
	"github.com/sluice-ci/sluice/backupverify/pgcluster"
	"github.com/sluice-ci/sluice/backupverify/pgcluster/pgtest"
	"github.com/sluice-ci/sluice/internal/golden"
)

// dropRows deletes 30% of the orders (and the invoice lines that point at them).
var dropRows = []string{
	`DELETE FROM billing."Invoice Lines" WHERE order_id % 10 < 3`,
	"DELETE FROM public.orders WHERE id % 10 < 3",
}

func TestRestoreVerify(t *testing.T) {
	c := pgtest.Cluster(t)
	scratch := c.DSN("postgres")
	tests := []struct {
		name string
		// setup changes the source and returns the options; base was captured first.
		setup   func(t *testing.T, src string, base *backupverify.Baseline) backupverify.RestoreOptions
		passed  bool
		want    []want
		summary string // in the summary or a finding
	}{
		{name: "good dump taken by sluice", passed: true,
			setup: func(t *testing.T, src string, base *backupverify.Baseline) backupverify.RestoreOptions {
				return backupverify.RestoreOptions{SourceDSN: src, Baseline: base}
			}},
		{name: "good dump file", passed: true,
			setup: func(t *testing.T, src string, base *backupverify.Baseline) backupverify.RestoreOptions {
				return backupverify.RestoreOptions{DumpFile: pgDump(t, src), SourceDSN: src, Baseline: base}
			}},
		{name: "truncated dump", summary: "(the dump is truncated or corrupt)",
			want: []want{{backupverify.RuleRestoreFailed, "", ""}},
			setup: func(t *testing.T, src string, base *backupverify.Baseline) backupverify.RestoreOptions {
				dump := pgDump(t, src)
				truncate(t, dump, 0.7)
				return backupverify.RestoreOptions{DumpFile: dump, SourceDSN: src, Baseline: base}
			}},
		{name: "not a dump", summary: "the dump cannot be read: pg_restore: error: input file does not appear to be a valid archive",
			want: []want{{backupverify.RuleDumpUnreadable, "", ""}},
			setup: func(t *testing.T, src string, base *backupverify.Baseline) backupverify.RestoreOptions {
				file := filepath.Join(t.TempDir(), "backup.dump")
				if err := os.WriteFile(file, bytes.Repeat([]byte("not a dump "), 100), 0o600); err != nil {
					t.Fatal(err)
				}
				return backupverify.RestoreOptions{DumpFile: file, Baseline: base}
			}},
		{name: "dump taken before a row-dropping change", summary: "table public.orders: the restore has 1000 rows, the source 700",
			want: []want{{backupverify.RuleRowsDiffer, "public.orders", ""}, {backupverify.RuleRowsDiffer, `billing."Invoice Lines"`, ""}},
			setup: func(t *testing.T, src string, base *backupverify.Baseline) backupverify.RestoreOptions {
				dump := pgDump(t, src)
				pgtest.Exec(t, src, dropRows...)
				return backupverify.RestoreOptions{DumpFile: dump, SourceDSN: src, Baseline: base}
			}},
		{name: "dump taken after a row-dropping change", summary: "30.0% fewer than the baseline's 1000",
			want: []want{{backupverify.RuleRowsDropped, "public.orders", ""}},
			setup: func(t *testing.T, src string, base *backupverify.Baseline) backupverify.RestoreOptions {
				pgtest.Exec(t, src, dropRows...)
				return backupverify.RestoreOptions{SourceDSN: src, Baseline: base}
			}},
		{name: "restored content differs from the source",
			summary: "table public.orders: restored content differs from the source (same 1000 rows, different checksum)",
			want:    []want{{backupverify.RuleChecksumDiffers, "public.orders", ""}},
			setup: func(t *testing.T, src string, base *backupverify.Baseline) backupverify.RestoreOptions {
				dump := pgDump(t, src)
				pgtest.Exec(t, src, "UPDATE public.orders SET note = 'tampered' WHERE id = 7")
				return backupverify.RestoreOptions{DumpFile: dump, SourceDSN: src, Baseline: base}
			}},
		{name: "restored content differs from the baseline's checksums",
			summary: "table public.products: restored content differs from the baseline's checksum",
			want:    []want{{backupverify.RuleChecksumDiffers, "public.products", ""}},
			setup: func(t *testing.T, src string, _ *backupverify.Baseline) backupverify.RestoreOptions {
				base, err := backupverify.Capture(t.Context(), src, backupverify.CaptureOptions{Checksums: true})
				if err != nil {
					t.Fatal(err)
				}
				pgtest.Exec(t, src, "UPDATE public.products SET price = price + 1 WHERE sku = 'SKU-3'")
				return backupverify.RestoreOptions{DumpFile: pgDump(t, src), Baseline: base}
			}},
		{name: "unreachable source with a dump file: baseline only", passed: true,
			want: []want{{backupverify.RuleSourceUnreachable, "", ""}},
			setup: func(t *testing.T, src string, base *backupverify.Baseline) backupverify.RestoreOptions {
				return backupverify.RestoreOptions{DumpFile: pgDump(t, src), Baseline: base,
					SourceDSN: fmt.Sprintf("postgres://sluice:pw@%s/app?sslmode=disable", freeAddr(t))}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := seeded(t)
			o := tt.setup(t, src, capture(t, src))
			o.ScratchDSN, o.Policy = scratch, backupverify.DefaultPolicy()
			var log bytes.Buffer
			o.Log = &log
			r, err := backupverify.RestoreVerify(t.Context(), o)
			if err != nil {
				t.Fatalf("RestoreVerify: %v\nlog:\n%s", err, log.String())
			}
			if r.Passed != tt.passed {
				t.Errorf("passed = %v, want %v: %s%s", r.Passed, tt.passed, r.Summary, findingsText(r))
			}
			if said := r.Summary + findingsText(r); !strings.Contains(said, tt.summary) {
				t.Errorf("report does not say %q: %s", tt.summary, said)
			}
			for _, w := range tt.want {
				if !hasFinding(r, w.rule, w.table, w.column) {
					t.Errorf("no %s finding for %s:%s", w.rule, w.table, findingsText(r))
				}
			}
			if tt.want == nil && len(r.Findings) > 0 {
				t.Errorf("unexpected findings:%s", findingsText(r))
			}
			if tt.passed && o.SourceDSN != "" && !hasFinding(r, backupverify.RuleSourceUnreachable, "", "") {
				for _, tr := range r.Tables {
					if tr.Checksum == "" || tr.Checksum != tr.SourceChecksum || *tr.Rows != *tr.SourceRows {
						t.Errorf("table %s: rows %v/%v checksum %s/%s, want equal to the source's",
							tr.Table, tr.Rows, tr.SourceRows, tr.Checksum, tr.SourceChecksum)
					}
				}
			}
			assertNoScratchDatabases(t, c)
		})
	}
}

// truncate cuts file to fraction of its size, as an interrupted upload would.
func truncate(t *testing.T, file string, fraction float64) {
	t.Helper()
	fi, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(file, int64(float64(fi.Size())*fraction)); err != nil {
		t.Fatal(err)
	}
}

// assertNoScratchDatabases: every scratch database was dropped.
func assertNoScratchDatabases(t *testing.T, c *pgcluster.Cluster) {
	t.Helper()
	var n int
	if err := pgtest.Conn(t, c.DSN("postgres")).QueryRow(t.Context(),
		"SELECT count(*) FROM pg_database WHERE datname LIKE 'sluice_verify_%'").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("%d scratch databases left behind", n)
	}
}

func TestRestoreVerifyReportGolden(t *testing.T) {
	src := seeded(t)
	r, err := backupverify.RestoreVerify(t.Context(), backupverify.RestoreOptions{
		SourceDSN: src, Baseline: capture(t, src), Policy: backupverify.DefaultPolicy(),
		ScratchDSN: pgtest.Cluster(t).DSN("postgres"),
	})
	if err != nil {
		t.Fatal(err)
	}
	normalizeReport(r)
	golden.Check(t, filepath.Join("testdata", "restore-report.golden.json"), r.JSON())
	var text bytes.Buffer
	if err := r.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	golden.Check(t, filepath.Join("testdata", "restore-report.golden.txt"), text.Bytes())
}

// clusterParent is a directory the throwaway cluster's unprivileged user can enter when
// the tests run as root (t.TempDir() is private to root).
func clusterParent(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "sluice-bv-test-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func TestRestoreVerifyIntoAThrowawayCluster(t *testing.T) {
	src := seeded(t)
	// A policy naming a role: the throwaway cluster must have the role for the dump to
	// restore, so the engine creates the source's roles there.
	pgtest.Exec(t, src,
		"DO $$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'app_reader') THEN CREATE ROLE app_reader NOLOGIN; END IF; END$$",
		"ALTER TABLE public.orders ENABLE ROW LEVEL SECURITY",
		"CREATE POLICY readers ON public.orders FOR SELECT TO app_reader USING (true)")
	work := clusterParent(t)
	var log bytes.Buffer
	r, err := backupverify.RestoreVerify(t.Context(), backupverify.RestoreOptions{
		SourceDSN: src, Baseline: capture(t, src), Policy: backupverify.DefaultPolicy(), WorkDir: work, Log: &log,
	})
	if err != nil {
		t.Fatalf("%v\nlog:\n%s", err, log.String())
	}
	if !r.Passed || !strings.Contains(r.Restore.Target, "throwaway cluster") {
		t.Fatalf("passed %v into %q: %s%s\nlog:\n%s", r.Passed, r.Restore.Target, r.Summary, findingsText(r), log.String())
	}
	left, err := os.ReadDir(work)
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 0 {
		t.Errorf("left behind in the work directory: %v", left)
	}
}

func TestRestoreVerifyErrors(t *testing.T) {
	c := pgtest.Cluster(t)
	src := seeded(t)
	base := capture(t, src)
	plain := filepath.Join(t.TempDir(), "plain.sql")
	if out, err := exec.Command(pgtest.Bin(t, "pg_dump").Path("pg_dump"), "--format=plain", "--file="+plain, "--dbname="+src).CombinedOutput(); err != nil {
		t.Fatalf("pg_dump: %v: %s", err, out)
	}
	pgtest.Exec(t, c.DSN("postgres"),
		"DO $$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'no_createdb') THEN CREATE ROLE no_createdb LOGIN PASSWORD 'pw12345'; END IF; END$$")
	noCreateDB := fmt.Sprintf("postgres://no_createdb:pw12345@127.0.0.1:%d/postgres?sslmode=disable", c.Port)
	unreachable := fmt.Sprintf("postgres://sluice:pw@%s/app?sslmode=disable", freeAddr(t))
	tests := []struct {
		name    string
		o       backupverify.RestoreOptions
		wantErr error
		want    string
	}{
		{"plain SQL dump", backupverify.RestoreOptions{DumpFile: plain, Baseline: base, ScratchDSN: c.DSN("postgres")},
			backupverify.ErrUnsupportedDump, "plain-SQL dump, which pg_restore cannot read; take the backup with pg_dump --format=custom"},
		{"missing dump file", backupverify.RestoreOptions{DumpFile: "/nonexistent/backup.dump", Baseline: base},
			backupverify.ErrBadInput, "/nonexistent/backup.dump: no such file"},
		{"no dump and no source", backupverify.RestoreOptions{Baseline: base}, backupverify.ErrBadInput, "give a dump file, or the source DSN"},
		{"nothing to compare with", backupverify.RestoreOptions{DumpFile: plain}, backupverify.ErrBadInput, "give a baseline, or the source DSN"},
		{"unreachable source to dump", backupverify.RestoreOptions{SourceDSN: unreachable, Baseline: base},
			backupverify.ErrUnreachable, "connection refused"},
		{"missing PostgreSQL binaries", backupverify.RestoreOptions{SourceDSN: src, Baseline: base, PGBin: t.TempDir()},
			pgcluster.ErrNoBinaries, "apt-get install -y postgresql-15"},
		{"scratch user without CREATEDB", backupverify.RestoreOptions{SourceDSN: src, Baseline: base, ScratchDSN: noCreateDB},
			backupverify.ErrScratch, "no_createdb@127.0.0.1"},
		{"bad policy", backupverify.RestoreOptions{SourceDSN: src, Baseline: base, Policy: backupverify.Policy{MaxDropPct: 200}},
			backupverify.ErrBadPolicy, "between 0 and 100"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := backupverify.RestoreVerify(t.Context(), tt.o)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not say %q", err, tt.want)
			}
		})
	}
}

func TestRestoreVerifyKeepsTheDumpsEncoding(t *testing.T) {
	c := pgtest.Cluster(t)
	admin := pgtest.Conn(t, c.DSN("postgres"))
	if _, err := admin.Exec(t.Context(), "CREATE DATABASE latin TEMPLATE template0 ENCODING 'LATIN1' LOCALE 'C'"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := admin.Exec(context.Background(), "DROP DATABASE latin WITH (FORCE)"); err != nil {
			t.Error(err)
		}
	})
	src := c.DSN("latin")
	// Text is stored in the database's encoding, and hashed as stored: restored as UTF8,
	// "é" would take two bytes instead of one and every checksum would differ.
	pgtest.Exec(t, src, "CREATE TABLE names (id int PRIMARY KEY, name text NOT NULL)",
		"INSERT INTO names VALUES (1, 'José'), (2, 'Zoë'), (3, 'plain')")
	r, err := backupverify.RestoreVerify(t.Context(), backupverify.RestoreOptions{
		SourceDSN: src, Policy: backupverify.DefaultPolicy(), ScratchDSN: c.DSN("postgres"),
	})
	if err != nil {
		t.Fatal(err)
	}
	if !r.Passed {
		t.Errorf("%s%s", r.Summary, findingsText(r))
	}
}
