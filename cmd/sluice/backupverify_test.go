package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-ci/sluice/backupverify/pgcluster/pgtest"
)

// `sluice backupverify` against a real PostgreSQL: a baseline, a clean verify (exit 0), a
// destructive change reported with its table and column (exit 1), bad input (exit 2).
func TestBackupVerifyCommand(t *testing.T) {
	dsn := pgtest.Database(t, pgtest.Cluster(t), "")
	pgtest.Exec(t, dsn,
		"CREATE TABLE users (id int PRIMARY KEY, email text NOT NULL)",
		"INSERT INTO users SELECT g, 'u' || g || '@example.com' FROM generate_series(1, 100) g")
	baseline := filepath.Join(t.TempDir(), "baseline.json")
	if code, _, stderr := cli(t, "backupverify", "baseline", "--dsn", dsn, "--out", baseline); code != exitOK {
		t.Fatalf("baseline: exit %d: %s", code, stderr)
	}
	if code, stdout, stderr := cli(t, "backupverify", "verify", "--dsn", dsn, "--baseline", baseline); code != exitOK {
		t.Fatalf("verify of an unchanged database: exit %d\n%s%s", code, stdout, stderr)
	}
	pgtest.Exec(t, dsn, "ALTER TABLE users DROP COLUMN email")
	code, stdout, stderr := cli(t, "backupverify", "verify", "--dsn", dsn, "--baseline", baseline)
	if code != exitFailed || !strings.Contains(stdout+stderr, "users") || !strings.Contains(stdout+stderr, "email") {
		t.Fatalf("verify after dropping a column: exit %d, want %d naming users.email\n%s%s", code, exitFailed, stdout, stderr)
	}
	if code, _, stderr := cli(t, "backupverify", "verify", "--dsn", dsn, "--baseline", filepath.Join(t.TempDir(), "missing.json")); code != exitUsage || !strings.Contains(stderr, "missing.json") {
		t.Fatalf("verify with a missing baseline: exit %d, want %d naming the file: %s", code, exitUsage, stderr)
	}
	if strings.Contains(stdout+stderr, "password=") {
		t.Fatal("the DSN's secrets were printed")
	}
}
