package backupverify

import (
	"errors"
	"slices"
	"testing"
)

func TestToolConnKeepsThePasswordOutOfTheCommandLine(t *testing.T) {
	tests := []struct {
		name     string
		dsn      string
		conninfo string
		env      []string
	}{
		{"URL", "postgres://app:s3cr%3At@db.example:5433/shop?sslmode=require",
			"postgres://app@db.example:5433/shop?sslmode=require", []string{"PGPASSWORD=s3cr:t", "PGCONNECT_TIMEOUT=10"}},
		{"URL password parameter", "postgresql://app@db/shop?password=pw&connect_timeout=3",
			"postgresql://app@db/shop?connect_timeout=3", []string{"PGPASSWORD=pw"}},
		{"URL without user", "postgres:///shop?host=/run/postgresql",
			"postgres:///shop?host=/run/postgresql", []string{"PGCONNECT_TIMEOUT=10"}},
		{"key=value", "host=db user=app password=pw dbname=shop",
			"host='db' user='app' dbname='shop'", []string{"PGPASSWORD=pw", "PGCONNECT_TIMEOUT=10"}},
		{"quoted value with spaces and escapes", `host = db password = 'it''s \'a\' p w' dbname=shop`,
			"", nil},
		{"quoted value", `host=db password='a b\'c' dbname=my\ db`,
			`host='db' dbname='my db'`, []string{"PGPASSWORD=a b'c", "PGCONNECT_TIMEOUT=10"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conninfo, env, err := toolConn(tt.dsn)
			if tt.conninfo == "" {
				if !errors.Is(err, ErrBadDSN) {
					t.Fatalf("err = %v, want ErrBadDSN", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if conninfo != tt.conninfo || !slices.Equal(env, tt.env) {
				t.Errorf("got %q %q, want %q %q", conninfo, env, tt.conninfo, tt.env)
			}
		})
	}
}

func TestWithDatabase(t *testing.T) {
	tests := []struct{ dsn, want string }{
		{"postgres://u:p@h:5432/postgres?sslmode=disable", "postgres://u:p@h:5432/scratch?sslmode=disable"},
		{"postgres://u:p@h/?dbname=postgres", "postgres://u:p@h/scratch"},
		{"host=h dbname=postgres user=u", "host='h' user='u' dbname='scratch'"},
		{"host=h", "host='h' dbname='scratch'"},
	}
	for _, tt := range tests {
		got, err := withDatabase(tt.dsn, "scratch")
		if err != nil || got != tt.want {
			t.Errorf("withDatabase(%q) = %q, %v; want %q", tt.dsn, got, err, tt.want)
		}
	}
}
