// Package pgtest gives a package's tests one real PostgreSQL cluster, started from the
// machine's binaries on first use and stopped after the last test. Without the binaries a
// test is skipped with a message saying how to install them, and fails instead when
// CI=true: CI must never pass without having run the database tests.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/sluice-ci/sluice/backupverify/pgcluster"
)

// BinEnv names a directory of PostgreSQL binaries to use instead of the search.
const BinEnv = "SLUICE_PG_BIN"

var shared struct {
	once    sync.Once
	cluster *pgcluster.Cluster
	err     error
}

// Main runs the tests of a package and then stops the shared cluster. Call it from
// TestMain: os.Exit(pgtest.Main(m)).
func Main(m *testing.M) int {
	code := m.Run()
	if shared.cluster != nil {
		if err := shared.cluster.Close(); err != nil {
			fmt.Fprintln(os.Stderr, "pgtest:", err)
		}
	}
	return code
}

// Bin returns the binaries tools need, or ends the test as Cluster does when they are
// missing.
func Bin(t testing.TB, tools ...string) pgcluster.Bin {
	t.Helper()
	b, err := pgcluster.FindBin(os.Getenv(BinEnv), tools...)
	if err != nil {
		unavailable(t, err)
	}
	return b
}

// Cluster returns the package's shared cluster, starting it on first use.
func Cluster(t testing.TB) *pgcluster.Cluster {
	t.Helper()
	shared.once.Do(func() {
		var bin pgcluster.Bin
		if bin, shared.err = pgcluster.FindBin(os.Getenv(BinEnv), append(pgcluster.ServerTools, pgcluster.ClientTools...)...); shared.err != nil {
			return
		}
		shared.cluster, shared.err = pgcluster.Start(context.Background(), pgcluster.Options{Bin: bin})
	})
	if shared.err != nil {
		unavailable(t, shared.err)
	}
	return shared.cluster
}

// unavailable fails the test under CI and skips it elsewhere, loudly either way.
func unavailable(t testing.TB, err error) {
	t.Helper()
	msg := fmt.Sprintf("real PostgreSQL unavailable: %v (or set %s to a directory holding initdb, postgres, pg_dump and pg_restore)", err, BinEnv)
	if strings.EqualFold(os.Getenv("CI"), "true") {
		t.Fatal(msg)
	}
	t.Skip("SKIPPED: " + msg)
}

// Database creates a fresh database on c, from template when it is not empty, and drops it
// when the test ends. It returns the database's DSN.
func Database(t testing.TB, c *pgcluster.Cluster, template string) string {
	t.Helper()
	ctx := context.Background()
	name := "t_" + randomSuffix(t)
	conn := Conn(t, c.DSN("postgres"))
	q := "CREATE DATABASE " + pgx.Identifier{name}.Sanitize()
	if template != "" {
		q += " TEMPLATE " + pgx.Identifier{template}.Sanitize()
	}
	if _, err := conn.Exec(ctx, q); err != nil {
		t.Fatalf("create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
	})
	return c.DSN(name)
}

// Conn connects to dsn; the connection closes when the test ends.
func Conn(t testing.TB, dsn string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// Exec runs SQL statements on dsn, failing the test on error.
func Exec(t testing.TB, dsn string, stmts ...string) {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(context.Background())
	for _, s := range stmts {
		if _, err := conn.Exec(context.Background(), s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

func randomSuffix(t testing.TB) string {
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}
