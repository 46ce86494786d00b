package backupverify_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/sluice-ci/sluice/backupverify"
	"github.com/sluice-ci/sluice/backupverify/pgcluster/pgtest"
)

// benchSizeEnv sets the generated database's size in MB (default 1024).
const benchSizeEnv = "SLUICE_BV_BENCH_MB"

// BenchmarkRestoreVerify measures what verification adds to a restore: on a generated
// database of about 1 GB it times pg_restore alone, then RestoreVerify of the same dump
// with the same --jobs into the same server (source comparison on), in the same run.
// Run it once: go test -run '^$' -bench RestoreVerify -benchtime 1x ./backupverify/
func BenchmarkRestoreVerify(b *testing.B) {
	mb := 1024
	if v := os.Getenv(benchSizeEnv); v != "" {
		var err error
		if mb, err = strconv.Atoi(v); err != nil || mb < 1 {
			b.Fatalf("%s=%q: want a size in MB", benchSizeEnv, v)
		}
	}
	c := pgtest.Cluster(b)
	bin := pgtest.Bin(b, "pg_dump", "pg_restore")
	ctx := context.Background()
	src := pgtest.Database(b, c, "")
	t0 := time.Now()
	generate(b, src, mb)
	var size int64
	conn := pgtest.Conn(b, src)
	if err := conn.QueryRow(ctx, "SELECT pg_database_size(current_database())").Scan(&size); err != nil {
		b.Fatal(err)
	}
	b.Logf("generated %.0f MB in %s", float64(size)/(1<<20), time.Since(t0).Round(time.Second))
	base, err := backupverify.Capture(ctx, src, backupverify.CaptureOptions{})
	if err != nil {
		b.Fatal(err)
	}
	dump := filepath.Join(b.TempDir(), "bench.dump")
	t0 = time.Now()
	if out, err := exec.Command(bin.Path("pg_dump"), "--format=custom", "--file="+dump, "--dbname="+src).CombinedOutput(); err != nil {
		b.Fatalf("pg_dump: %v: %s", err, out)
	}
	fi, _ := os.Stat(dump)
	b.Logf("dumped %.0f MB in %s", float64(fi.Size())/(1<<20), time.Since(t0).Round(time.Second))
	jobs := min(runtime.NumCPU(), 4)

	// pg_restore alone runs before and after restore-verify (after a warm-up restore that
	// fills the page cache and the WAL segments): the mean of the two is the reference, so
	// neither side gains from running second on a shared machine.
	restoreAlone := func() time.Duration {
		alone := pgtest.Database(b, c, "")
		t0 := time.Now()
		out, err := exec.Command(bin.Path("pg_restore"), "--no-owner", "--no-privileges", "--exit-on-error",
			fmt.Sprintf("--jobs=%d", jobs), "--dbname="+alone, dump).CombinedOutput()
		if err != nil {
			b.Fatalf("pg_restore: %v: %s", err, out)
		}
		return time.Since(t0)
	}
	b.Logf("warm-up pg_restore %.1fs", restoreAlone().Seconds())
	b.ResetTimer()
	for range b.N {
		before := restoreAlone()
		t0 = time.Now()
		r, err := backupverify.RestoreVerify(ctx, backupverify.RestoreOptions{
			DumpFile: dump, SourceDSN: src, Baseline: base, Policy: backupverify.DefaultPolicy(),
			ScratchDSN: c.DSN("postgres"), Jobs: jobs,
		})
		if err != nil {
			b.Fatal(err)
		}
		total := time.Since(t0)
		if !r.Passed {
			b.Fatalf("restore-verify failed: %s", r.Summary)
		}
		after := restoreAlone()
		alone := (before + after).Seconds() / 2
		overhead := 100 * (total.Seconds() - alone) / alone
		b.ReportMetric(alone, "pg_restore-s")
		b.ReportMetric(total.Seconds(), "restore-verify-s")
		b.ReportMetric(overhead, "overhead-%")
		b.Logf("pg_restore alone %.1fs and %.1fs (mean %.1fs); restore-verify %.1fs (its pg_restore %.1fs, scratch database %.1fs, "+
			"checks after the restore %.1fs): %+.0f%%", before.Seconds(), after.Seconds(), alone, total.Seconds(),
			r.Restore.RestoreSeconds, r.Restore.ScratchSeconds, r.Restore.VerifySeconds, overhead)
	}
}

// generate fills dsn with about mb megabytes: one large table of mixed types with two
// indexes and a foreign key to a small one, like an application's events.
func generate(b *testing.B, dsn string, mb int) {
	b.Helper()
	// About 240 bytes per row on disk with its indexes.
	rows := int64(mb) << 20 / 240
	pgtest.Exec(b, dsn,
		`CREATE TABLE accounts (id int PRIMARY KEY, name text NOT NULL, created_at timestamptz NOT NULL)`,
		`INSERT INTO accounts SELECT g, 'account ' || g, timestamptz '2024-01-01 00:00:00+00' + g * interval '1 minute'
		 FROM generate_series(1, 10000) g`,
		`CREATE TABLE events (
		   id bigint PRIMARY KEY,
		   account_id int NOT NULL REFERENCES accounts (id),
		   kind text NOT NULL,
		   amount numeric(12,2) NOT NULL,
		   payload jsonb NOT NULL,
		   note text,
		   created_at timestamptz NOT NULL)`,
	)
	const batch = 500_000
	for from := int64(1); from <= rows; from += batch {
		to := min(from+batch-1, rows)
		pgtest.Exec(b, dsn, fmt.Sprintf(`INSERT INTO events
		  SELECT g, 1 + g %% 10000, (ARRAY['signup','order','refund','login'])[1 + g %% 4], (g %% 100000) / 100.0,
		         jsonb_build_object('seq', g, 'ok', g %% 7 <> 0, 'tag', 't' || (g %% 97)),
		         repeat(md5(g::text), 2), timestamptz '2024-01-01 00:00:00+00' + g * interval '1 second'
		  FROM generate_series(%d, %d) g`, from, to))
	}
	pgtest.Exec(b, dsn, "CREATE INDEX events_account_created ON events (account_id, created_at)", "ANALYZE")
}
