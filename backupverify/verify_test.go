package backupverify_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-ci/sluice/backupverify"
	"github.com/sluice-ci/sluice/backupverify/pgcluster/pgtest"
	"github.com/sluice-ci/sluice/internal/golden"
)

type want struct{ rule, table, column string }

func TestVerifyReportsEachChangeWithItsTableAndColumn(t *testing.T) {
	deleteOrders := "DELETE FROM billing.\"Invoice Lines\"; DELETE FROM public.orders WHERE id % 10 < 3"
	tests := []struct {
		name   string
		change []string
		policy func(*backupverify.Policy)
		edit   func(*backupverify.Baseline) // a hand edit of the baseline
		passed bool
		want   []want
	}{
		{name: "unchanged", passed: true},
		{name: "drop table", change: []string{"DROP TABLE billing.\"Invoice Lines\""},
			want: []want{{backupverify.RuleTableMissing, `billing."Invoice Lines"`, ""}}},
		{name: "drop column", change: []string{"ALTER TABLE public.customers DROP COLUMN name"},
			want: []want{{backupverify.RuleColumnMissing, "public.customers", "name"}}},
		{name: "change a type", change: []string{"ALTER TABLE public.orders ALTER COLUMN quantity TYPE bigint"},
			want: []want{{backupverify.RuleColumnType, "public.orders", "quantity"}}},
		{name: "delete 30% of rows", change: []string{deleteOrders},
			want: []want{{backupverify.RuleRowsDropped, "public.orders", ""}, {backupverify.RuleRowsDropped, `billing."Invoice Lines"`, ""}}},
		{name: "30% drop under a 50% policy", change: []string{"DELETE FROM public.orders WHERE id % 10 < 3 AND id > 50"},
			policy: func(p *backupverify.Policy) { p.MaxDropPct = 50 }, passed: true},
		{name: "additive: new table and new nullable column",
			change: []string{"CREATE TABLE public.audit (id int PRIMARY KEY, what text)",
				"ALTER TABLE public.customers ADD COLUMN nickname text"},
			passed: true,
			want:   []want{{backupverify.RuleTableExtra, "public.audit", ""}, {backupverify.RuleColumnExtra, "public.customers", "nickname"}}},
		{name: "new NOT NULL column without a default is a low note",
			change: []string{"ALTER TABLE public.products ADD COLUMN stock int NOT NULL DEFAULT 0",
				"ALTER TABLE public.products ALTER COLUMN stock DROP DEFAULT"},
			passed: true, want: []want{{backupverify.RuleColumnExtra, "public.products", "stock"}}},
		{name: "rows below the policy minimum", policy: func(p *backupverify.Policy) { p.MinRows = 100 },
			want: []want{{backupverify.RuleRowsBelowMinimum, "public.products", ""}}},
		{name: "a table's own min_rows in the baseline",
			edit:   func(b *backupverify.Baseline) { b.Table("public.orders").MinRows = 5000 },
			policy: func(p *backupverify.Policy) { p.MinRows = 1 },
			want:   []want{{backupverify.RuleRowsBelowMinimum, "public.orders", ""}}},
		{name: "dropped foreign key fails", change: []string{"ALTER TABLE public.orders DROP CONSTRAINT orders_sku_fkey"},
			want: []want{{backupverify.RuleForeignKeyMissing, "public.orders", ""}}},
		{name: "dropped primary key fails", change: []string{"ALTER TABLE public.products DROP CONSTRAINT products_pkey CASCADE"},
			want: []want{{backupverify.RulePrimaryKey, "public.products", ""}}},
		{name: "dropped index is a note", change: []string{"DROP INDEX public.orders_customer_idx"}, passed: true,
			want: []want{{backupverify.RuleIndexMissing, "public.orders", ""}}},
		{name: "NOT NULL relaxed is a note", change: []string{"ALTER TABLE public.orders ALTER COLUMN total DROP NOT NULL"}, passed: true,
			want: []want{{backupverify.RuleColumnNullability, "public.orders", "total"}}},
		{name: "notes fail under fail-on info", change: []string{"CREATE TABLE public.audit (id int)"},
			policy: func(p *backupverify.Policy) { p.FailOn = backupverify.SeverityInfo },
			want:   []want{{backupverify.RuleTableExtra, "public.audit", ""}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dsn := seeded(t)
			base := capture(t, dsn)
			if tt.edit != nil {
				tt.edit(base)
			}
			pgtest.Exec(t, dsn, tt.change...)
			p := backupverify.DefaultPolicy()
			if tt.policy != nil {
				tt.policy(&p)
			}
			r, err := backupverify.VerifyLive(t.Context(), dsn, base, p, backupverify.CaptureOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if r.Passed != tt.passed {
				t.Errorf("passed = %v, want %v: %s%s", r.Passed, tt.passed, r.Summary, findingsText(r))
			}
			for _, w := range tt.want {
				if !hasFinding(r, w.rule, w.table, w.column) {
					t.Errorf("no %s finding for %s %s:%s", w.rule, w.table, w.column, findingsText(r))
				}
			}
			if tt.want == nil && len(r.Findings) > 0 {
				t.Errorf("unexpected findings:%s", findingsText(r))
			}
			for _, f := range r.Findings {
				if f.Table == "" || !strings.Contains(f.Message, f.Table) || !strings.Contains(f.Message, f.Column) {
					t.Errorf("finding %q does not name its table %q and column %q", f.Message, f.Table, f.Column)
				}
			}
		})
	}
}

func TestVerifyReportGolden(t *testing.T) {
	dsn := seeded(t)
	base := capture(t, dsn)
	pgtest.Exec(t, dsn,
		"ALTER TABLE public.customers DROP COLUMN name",
		"ALTER TABLE public.orders ALTER COLUMN quantity TYPE bigint",
		"DELETE FROM billing.\"Invoice Lines\" WHERE line = 1",
		"CREATE TABLE public.audit (id int PRIMARY KEY)")
	r, err := backupverify.VerifyLive(t.Context(), dsn, base, backupverify.DefaultPolicy(), backupverify.CaptureOptions{})
	if err != nil {
		t.Fatal(err)
	}
	normalizeReport(r)
	golden.Check(t, filepath.Join("testdata", "verify-report.golden.json"), r.JSON())
	var text bytes.Buffer
	if err := r.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	golden.Check(t, filepath.Join("testdata", "verify-report.golden.txt"), text.Bytes())
}

// silentListener accepts connections and never answers, like a hung server or a
// firewall that swallows packets.
func silentListener(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() {
		ln.Close()
		<-done
	})
	go func() {
		defer close(done)
		var conns []net.Conn
		for {
			c, err := ln.Accept()
			if err != nil {
				for _, c := range conns {
					c.Close()
				}
				return
			}
			conns = append(conns, c)
		}
	}()
	return ln.Addr().String()
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestConnectErrorsAreClear(t *testing.T) {
	c := pgtest.Cluster(t)
	good := seeded(t)
	tests := []struct {
		name    string
		dsn     string
		wantErr error
		want    []string
	}{
		{"nothing listening", fmt.Sprintf("postgres://sluice:secretpw@%s/app?sslmode=disable", freeAddr(t)),
			backupverify.ErrUnreachable, []string{"cannot reach PostgreSQL", "connection refused", "is the server running"}},
		{"server never answers", fmt.Sprintf("postgres://sluice:secretpw@%s/app?sslmode=disable&connect_timeout=1", silentListener(t)),
			backupverify.ErrUnreachable, []string{"did not answer within the 1s connect timeout"}},
		{"wrong password", strings.Replace(good, c.Password, "secretpw", 1),
			backupverify.ErrAuth, []string{`password authentication failed for user "sluice"`, "check the user and password"}},
		{"missing database", c.DSN("nosuchdb"),
			backupverify.ErrNoDatabase, []string{`database "nosuchdb" does not exist`, "/nosuchdb"}},
		{"malformed DSN", "host=127.0.0.1 port=notaport password=secretpw", backupverify.ErrBadDSN, []string{"invalid DSN"}},
		{"empty DSN", " ", backupverify.ErrBadDSN, []string{"empty"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := backupverify.Capture(t.Context(), tt.dsn, backupverify.CaptureOptions{})
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "secretpw") || strings.Contains(err.Error(), c.Password) {
				t.Errorf("error %q shows the password", err)
			}
		})
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := backupverify.Capture(ctx, good, backupverify.CaptureOptions{}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: err = %v, want context.Canceled", err)
	}
}

func TestPolicyValidate(t *testing.T) {
	tests := []struct {
		p  backupverify.Policy
		ok bool
	}{
		{backupverify.DefaultPolicy(), true},
		{backupverify.Policy{}, true},
		{backupverify.Policy{MaxDropPct: 100}, true},
		{backupverify.Policy{MaxDropPct: 101}, false},
		{backupverify.Policy{MaxDropPct: -1}, false},
		{backupverify.Policy{MinRows: -1}, false},
		{backupverify.Policy{FailOn: "severe"}, false},
	}
	for _, tt := range tests {
		if err := tt.p.Validate(); (err == nil) != tt.ok || (err != nil && !errors.Is(err, backupverify.ErrBadPolicy)) {
			t.Errorf("%+v: Validate() = %v, want ok %v", tt.p, err, tt.ok)
		}
	}
}
