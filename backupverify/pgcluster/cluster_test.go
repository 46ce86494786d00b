package pgcluster_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/sluice-ci/sluice/backupverify/pgcluster"
	"github.com/sluice-ci/sluice/backupverify/pgcluster/pgtest"
)

func TestClusterStartsServesAndIsRemoved(t *testing.T) {
	bin := pgtest.Bin(t, pgcluster.ServerTools...)
	c, err := pgcluster.Start(t.Context(), pgcluster.Options{Bin: bin})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	if err := c.CreateDatabase(t.Context(), "app"); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(t.Context(), c.DSN("app"))
	if err != nil {
		t.Fatal(err)
	}
	var db, addr string
	var superuser bool
	err = conn.QueryRow(t.Context(), "SELECT current_database(), inet_server_addr()::text, rolsuper FROM pg_roles WHERE rolname = current_user").
		Scan(&db, &addr, &superuser)
	conn.Close(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if db != "app" || addr != "127.0.0.1/32" || !superuser {
		t.Errorf("connected to %s on %s (superuser %v), want app on 127.0.0.1/32 as a superuser", db, addr, superuser)
	}

	wrong := strings.Replace(c.DSN("app"), c.Password, "wrong", 1)
	if conn, err := pgx.Connect(t.Context(), wrong); err == nil {
		conn.Close(context.Background())
		t.Error("a wrong password was accepted: the cluster must require the password")
	}

	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(c.Dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("cluster directory %s still there after Close (stat: %v)", c.Dir, err)
	}
	if conn, err := pgx.Connect(t.Context(), c.DSN("app")); err == nil {
		conn.Close(context.Background())
		t.Error("server still answers after Close")
	}
	if err := c.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestFindBinErrorsSayHowToInstall(t *testing.T) {
	empty := t.TempDir()
	if err := os.WriteFile(filepath.Join(empty, "initdb"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		dir  string
		want string
	}{
		{"directory without the tools", empty, "no postgres, pg_dump in " + empty},
		{"directory that does not exist", filepath.Join(empty, "nowhere"), "no initdb, postgres, pg_dump in"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := pgcluster.FindBin(tt.dir, "initdb", "postgres", "pg_dump")
			if !errors.Is(err, pgcluster.ErrNoBinaries) {
				t.Fatalf("err = %v, want ErrNoBinaries", err)
			}
			for _, want := range []string{tt.want, "apt-get install -y postgresql-15", "--pg-bin"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not say %q", err, want)
				}
			}
		})
	}
}

func TestStartWithoutBinariesFails(t *testing.T) {
	_, err := pgcluster.Start(t.Context(), pgcluster.Options{Bin: pgcluster.Bin{Dir: t.TempDir()}})
	if !errors.Is(err, pgcluster.ErrNoBinaries) {
		t.Fatalf("err = %v, want ErrNoBinaries", err)
	}
}

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }
