package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/jackc/pgx/v5"

	"github.com/sluice-ci/sluice/backupverify/pgcluster"
	sluicev1 "github.com/sluice-ci/sluice/proto/sluice/v1"
	"github.com/sluice-ci/sluice/workers"
)

// The demo's production database: where the example's migrations, seed data and the
// baseline its backup-verify stage checks against live in the example tree.
const (
	demoDatabaseName  = "payments"
	demoDSNSecret     = "PAYMENTS_DATABASE_URL"
	demoMigrationsDir = "app/db/migrations"
	demoSeedFile      = "app/db/seed.sql"
	// badMigrationFile is what `sluice demo --bad-migration` adds to a copy of the example.
	badMigrationFile = demoMigrationsDir + "/0003_drop_currency.sql"
	badMigration     = "-- Every payment is in euros now: the currency column goes.\nALTER TABLE payments DROP COLUMN currency;\n"
	// ruleMigrations is the governance rule of destructive migrations.
	ruleMigrations = "GOV-003"
)

// demoDatabase is the example's production database: a throwaway PostgreSQL cluster from
// the machine's binaries, with the example's migrations applied and its seed data loaded.
// The demo's workers are granted its URL as the secret the backup-verify stage names.
type demoDatabase struct {
	cluster *pgcluster.Cluster
	dsn     string
}

func startDemoDatabase(ctx context.Context, example string) (_ *demoDatabase, err error) {
	files, err := filepath.Glob(filepath.Join(example, filepath.FromSlash(demoMigrationsDir), "*.sql"))
	if err != nil || len(files) == 0 {
		return nil, fmt.Errorf("demo database: no migrations in %s", filepath.Join(example, demoMigrationsDir))
	}
	slices.Sort(files)
	files = append(files, filepath.Join(example, filepath.FromSlash(demoSeedFile)))

	c, err := pgcluster.Start(ctx, pgcluster.Options{})
	if err != nil {
		return nil, fmt.Errorf("demo database: %w (make demo installs it)", err)
	}
	defer func() {
		if err != nil {
			_ = c.Close()
		}
	}()
	if err := c.CreateDatabase(ctx, demoDatabaseName); err != nil {
		return nil, fmt.Errorf("demo database: %w", err)
	}
	db := &demoDatabase{cluster: c, dsn: c.DSN(demoDatabaseName)}
	conn, err := pgx.Connect(ctx, db.dsn)
	if err != nil {
		return nil, fmt.Errorf("demo database: connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	for _, f := range files {
		sql, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("demo database: %w", err)
		}
		// Without arguments pgx sends the simple protocol: a file of several statements.
		if _, err := conn.Exec(ctx, string(sql)); err != nil {
			return nil, fmt.Errorf("demo database: %s: %w", f, err)
		}
	}
	return db, nil
}

// secrets grants the database's URL to the example pipeline's stages that name it.
func (db *demoDatabase) secrets(pipeline string) *workers.Secrets {
	return &workers.Secrets{
		Grants: []workers.SecretGrant{{Name: demoDSNSecret, Pipelines: []string{pipeline}}},
		LookupEnv: func(name string) (string, bool) {
			if name == demoDSNSecret {
				return db.dsn, true
			}
			return "", false
		},
	}
}

func (db *demoDatabase) close() error { return db.cluster.Close() }

// withBadMigration copies the example tree to a temporary directory and adds a migration
// that drops a column of a protected table; the caller removes the copy.
func withBadMigration(example string) (string, error) {
	dir, err := os.MkdirTemp("", "sluice-demo-source-")
	if err != nil {
		return "", fmt.Errorf("copy the example: %w", err)
	}
	if err := os.CopyFS(dir, os.DirFS(example)); err != nil {
		_ = os.RemoveAll(dir)
		return "", fmt.Errorf("copy the example: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, filepath.FromSlash(badMigrationFile)), []byte(badMigration), 0o644); err != nil {
		_ = os.RemoveAll(dir)
		return "", fmt.Errorf("add the bad migration: %w", err)
	}
	return dir, nil
}

// destructiveMigration is the finding of a failed stage that names the bad migration.
func destructiveMigration(run *sluicev1.RunState) *sluicev1.Finding {
	for _, s := range run.GetStages() {
		if s.GetStatus() != sluicev1.StageStatus_STAGE_STATUS_FAILED {
			continue
		}
		for _, f := range s.GetFindings() {
			if f.GetRule() == ruleMigrations && f.GetFile() == badMigrationFile {
				return f
			}
		}
	}
	return nil
}
