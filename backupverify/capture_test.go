package backupverify_test

import (
	"bytes"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-ci/sluice/backupverify"
	"github.com/sluice-ci/sluice/backupverify/pgcluster/pgtest"
	"github.com/sluice-ci/sluice/internal/golden"
)

func TestCaptureMatchesGoldenBaseline(t *testing.T) {
	dsn := seeded(t)
	b := capture(t, dsn)
	normalizeBaseline(b)
	var got bytes.Buffer
	if err := b.Encode(&got); err != nil {
		t.Fatal(err)
	}
	golden.Check(t, filepath.Join("testdata", "baseline.golden.json"), got.Bytes())

	// The file reads back to the same baseline, and a second capture writes the same bytes.
	back, err := backupverify.DecodeBaseline(bytes.NewReader(got.Bytes()), "baseline.golden.json")
	if err != nil {
		t.Fatalf("decode what Encode wrote: %v", err)
	}
	var again bytes.Buffer
	if err := back.Encode(&again); err != nil {
		t.Fatal(err)
	}
	second := capture(t, dsn)
	normalizeBaseline(second)
	var third bytes.Buffer
	if err := second.Encode(&third); err != nil {
		t.Fatal(err)
	}
	if again.String() != got.String() || third.String() != got.String() {
		t.Error("decode+encode or a second capture does not give the same bytes: the format is not stable")
	}
}

func TestCaptureOptions(t *testing.T) {
	dsn := seeded(t)
	pgtest.Exec(t, dsn, "ANALYZE")
	tests := []struct {
		name  string
		o     backupverify.CaptureOptions
		check func(t *testing.T, b *backupverify.Baseline)
	}{
		{"schemas filter", backupverify.CaptureOptions{Schemas: []string{"billing"}}, func(t *testing.T, b *backupverify.Baseline) {
			if len(b.Tables) != 1 || b.Tables[0].QualifiedName() != `billing."Invoice Lines"` {
				t.Errorf("tables %v, want only billing.\"Invoice Lines\"", names(b))
			}
		}},
		{"large tables estimated and flagged", backupverify.CaptureOptions{EstimateAbove: 500}, func(t *testing.T, b *backupverify.Baseline) {
			orders, customers := b.Table("public.orders"), b.Table("public.customers")
			if !orders.RowsEstimated || orders.Rows != 1000 {
				t.Errorf("orders: rows %d estimated %v, want the estimate 1000 flagged", orders.Rows, orders.RowsEstimated)
			}
			if customers.RowsEstimated || customers.Rows != 200 {
				t.Errorf("customers: rows %d estimated %v, want an exact 200", customers.Rows, customers.RowsEstimated)
			}
		}},
		{"negative limit counts everything", backupverify.CaptureOptions{EstimateAbove: -1}, func(t *testing.T, b *backupverify.Baseline) {
			for _, tb := range b.Tables {
				if tb.RowsEstimated {
					t.Errorf("%s estimated", tb.QualifiedName())
				}
			}
		}},
		{"checksums", backupverify.CaptureOptions{Checksums: true}, func(t *testing.T, b *backupverify.Baseline) {
			for _, tb := range b.Tables {
				// products has a json column, which has no hash function: text method.
				want := "h1:"
				if tb.Name == "products" {
					want = "v1:"
				}
				if !strings.HasPrefix(tb.Checksum, want) || tb.Rows == 0 {
					t.Errorf("%s checksum %q over %d rows, want %s...", tb.QualifiedName(), tb.Checksum, tb.Rows, want)
				}
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := backupverify.Capture(t.Context(), dsn, tt.o)
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, b)
		})
	}
}

func names(b *backupverify.Baseline) []string {
	var n []string
	for i := range b.Tables {
		n = append(n, b.Tables[i].QualifiedName())
	}
	return n
}

func TestDecodeBaselineErrors(t *testing.T) {
	tests := []struct {
		name    string
		file    string
		wantErr error
		want    string
	}{
		{"newer format version", `{"format": "sluice.backupverify.baseline", "version": 2, "tables": [], "new_field": 1}`,
			backupverify.ErrBaselineVersion, "format version 2, this sluice reads versions up to 1: it was written by a newer sluice; upgrade sluice"},
		{"not JSON", "tables:\n  - orders\n", backupverify.ErrBadBaseline, "is not a baseline JSON file"},
		{"truncated JSON", `{"format": "sluice.backupverify.baseline",` + "\n" + `"version": 1, "tables": [`,
			backupverify.ErrBadBaseline, "is not a baseline JSON file"},
		{"another format", `{"format": "sarif", "version": 1}`, backupverify.ErrBadBaseline, `has format "sarif"`},
		{"misspelt hand edit", `{"format": "sluice.backupverify.baseline", "version": 1, "tables": [` + "\n" +
			`{"schema": "public", "name": "orders", "columns": [], "rows": 5, "minRows": 3}]}`,
			backupverify.ErrBadBaseline, `unknown field "minRows"`},
		{"wrong type", `{"format": "sluice.backupverify.baseline", "version": 1, "tables": [` + "\n" +
			`{"schema": "public", "name": "orders", "rows": "many"}]}`, backupverify.ErrBadBaseline, "line 2"},
		{"table twice", `{"format": "sluice.backupverify.baseline", "version": 1, "tables": [` +
			`{"schema": "public", "name": "t", "columns": []}, {"schema": "public", "name": "t", "columns": []}]}`,
			backupverify.ErrBadBaseline, "table public.t listed twice"},
		{"version zero", `{"format": "sluice.backupverify.baseline", "version": 0}`, backupverify.ErrBadBaseline, "want a positive integer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := backupverify.DecodeBaseline(strings.NewReader(tt.file), "backup/baseline.json")
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			for _, want := range []string{"backup/baseline.json", tt.want} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not say %q", err, want)
				}
			}
		})
	}
	if _, err := backupverify.ReadBaselineFile("testdata/nowhere.json"); !errors.Is(err, backupverify.ErrBadBaseline) ||
		!strings.Contains(err.Error(), "testdata/nowhere.json") {
		t.Errorf("missing file: err = %v, want ErrBadBaseline naming the file", err)
	}
}

func TestWriteFileThenRead(t *testing.T) {
	b := capture(t, seeded(t))
	path := t.TempDir() + "/baseline.json"
	if err := b.WriteFile(path); err != nil {
		t.Fatal(err)
	}
	back, err := backupverify.ReadBaselineFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(back.Tables) != len(b.Tables) || back.Table("public.orders").Rows != 1000 {
		t.Errorf("read back %v", names(back))
	}
}
