package backupverify_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sluice-ci/sluice/backupverify"
	"github.com/sluice-ci/sluice/backupverify/pgcluster"
	"github.com/sluice-ci/sluice/backupverify/pgcluster/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// seedTemplate is the seeded database every test copies (CREATE DATABASE ... TEMPLATE),
// which is much faster than seeding each.
const seedTemplate = "seed_template"

var seed struct {
	once sync.Once
	err  error
}

// seeded returns the DSN of a fresh copy of testdata/seed.sql, dropped after the test.
func seeded(t *testing.T) string {
	t.Helper()
	c := pgtest.Cluster(t)
	seed.once.Do(func() { seed.err = createSeed(c) })
	if seed.err != nil {
		t.Fatalf("seed: %v", seed.err)
	}
	return pgtest.Database(t, c, seedTemplate)
}

func createSeed(c *pgcluster.Cluster) error {
	ctx := context.Background()
	sql, err := os.ReadFile(filepath.Join("testdata", "seed.sql"))
	if err != nil {
		return err
	}
	if err := c.CreateDatabase(ctx, seedTemplate); err != nil {
		return err
	}
	conn, err := pgx.Connect(ctx, c.DSN(seedTemplate))
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, string(sql))
	return err
}

// capture is backupverify.Capture that fails the test on error.
func capture(t *testing.T, dsn string) *backupverify.Baseline {
	t.Helper()
	b, err := backupverify.Capture(t.Context(), dsn, backupverify.CaptureOptions{})
	if err != nil {
		t.Fatalf("Capture: %v", err)
	}
	return b
}

// pgDump dumps dsn in pg_dump's custom format to a file in a temp dir.
func pgDump(t *testing.T, dsn string) string {
	t.Helper()
	bin := pgtest.Bin(t, "pg_dump")
	file := filepath.Join(t.TempDir(), "db.dump")
	if out, err := exec.Command(bin.Path("pg_dump"), "--format=custom", "--file="+file, "--dbname="+dsn).CombinedOutput(); err != nil {
		t.Fatalf("pg_dump: %v: %s", err, out)
	}
	return file
}

var fixedTime = time.Date(2025, 1, 31, 12, 0, 0, 0, time.UTC)

// normalizeBaseline removes what differs between runs: time, server, database name.
func normalizeBaseline(b *backupverify.Baseline) {
	b.CapturedAt, b.ServerVersion, b.Database = fixedTime, "15", "app"
}

var (
	scratchName = regexp.MustCompile(`sluice_verify_[0-9a-f]+`)
	port        = regexp.MustCompile(`127\.0\.0\.1:\d+`)
	testDB      = regexp.MustCompile(`/t_[0-9a-f]+`)
)

func normalizeText(s string) string {
	s = scratchName.ReplaceAllString(s, "sluice_verify_X")
	s = port.ReplaceAllString(s, "127.0.0.1:PORT")
	return testDB.ReplaceAllString(s, "/app")
}

// normalizeReport removes what differs between runs: names, ports and timings.
func normalizeReport(r *backupverify.Report) {
	r.Database = normalizeText(r.Database)
	if r.Baseline != nil {
		r.Baseline.Database, r.Baseline.CapturedAt = "app", fixedTime
	}
	for i := range r.Findings {
		r.Findings[i].Message = normalizeText(r.Findings[i].Message)
	}
	r.Summary = normalizeText(r.Summary)
	if ri := r.Restore; ri != nil {
		ri.Target, ri.Source, ri.Dump = normalizeText(ri.Target), normalizeText(ri.Source), normalizeText(ri.Dump)
		ri.DumpBytes, ri.DumpSeconds, ri.ScratchSeconds, ri.RestoreSeconds, ri.VerifySeconds, ri.TotalSeconds = 0, 0, 0, 0, 0, 0
	}
}

// hasFinding reports whether r has a finding of rule on table (and column, if given).
func hasFinding(r *backupverify.Report, rule, table, column string) bool {
	for _, f := range r.Findings {
		if f.Rule == rule && f.Table == table && (column == "" || f.Column == column) {
			return true
		}
	}
	return false
}

func findingsText(r *backupverify.Report) string {
	var b strings.Builder
	for _, f := range r.Findings {
		b.WriteString("\n  " + string(f.Severity) + " " + f.Rule + " " + f.Against + ": " + f.Message)
	}
	return b.String()
}
