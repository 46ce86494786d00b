package backupverify

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// The baseline file format; see the package documentation.
const (
	BaselineFormat  = "sluice.backupverify.baseline"
	BaselineVersion = 1
)

// Baseline is the recorded shape of a database: its tables, their columns, keys,
// indexes and row counts. Tables are sorted by schema and name, and everything inside a
// table by name (columns keep their table order), so two captures of the same database
// give the same file and a diff of two files reads as the change.
type Baseline struct {
	Format        string    `json:"format"`
	Version       int       `json:"version"`
	CapturedAt    time.Time `json:"captured_at"`
	ServerVersion string    `json:"server_version"`
	Database      string    `json:"database"`
	Tables        []Table   `json:"tables"`
}

// Table is one table, schema-qualified.
type Table struct {
	Schema      string       `json:"schema"`
	Name        string       `json:"name"`
	Columns     []Column     `json:"columns"`
	PrimaryKey  []string     `json:"primary_key,omitempty"`
	Indexes     []Index      `json:"indexes,omitempty"`
	ForeignKeys []ForeignKey `json:"foreign_keys,omitempty"`
	Checks      []Check      `json:"checks,omitempty"`
	Rows        int64        `json:"rows"`
	// RowsEstimated: Rows is the planner's estimate (pg_class.reltuples), not a count: the
	// table was larger than CaptureOptions.EstimateAbove.
	RowsEstimated bool `json:"rows_estimated,omitempty"`
	// MinRows is written by hand: the table's own minimum, overriding Policy.MinRows.
	MinRows int64 `json:"min_rows,omitempty"`
	// Checksum of the table's content (CaptureOptions.Checksums); restore-verify compares a
	// restored table with it.
	Checksum string `json:"checksum,omitempty"`
}

// QualifiedName is "schema.name", quoted where SQL would need quotes.
func (t *Table) QualifiedName() string { return qualify(t.Schema, t.Name) }

// Column is one column in table order.
type Column struct {
	Name     string `json:"name"`
	Type     string `json:"type"`
	Nullable bool   `json:"nullable"`
	Default  string `json:"default,omitempty"`
	// Identity is "always" or "by default" for identity columns.
	Identity string `json:"identity,omitempty"`
	// Generated is "stored" for generated columns; Default holds the expression.
	Generated string `json:"generated,omitempty"`
}

// Index is an index by name, with its full definition.
type Index struct {
	Name       string `json:"name"`
	Definition string `json:"definition"`
}

// ForeignKey is a foreign key constraint.
type ForeignKey struct {
	Name              string   `json:"name"`
	Columns           []string `json:"columns"`
	ReferencesTable   string   `json:"references_table"`
	ReferencesColumns []string `json:"references_columns"`
	OnUpdate          string   `json:"on_update,omitempty"` // omitted for NO ACTION
	OnDelete          string   `json:"on_delete,omitempty"` // omitted for NO ACTION
}

// Check is a check constraint.
type Check struct {
	Name       string `json:"name"`
	Definition string `json:"definition"`
}

// Table returns the table of b with the given qualified name.
func (b *Baseline) Table(qualified string) *Table {
	for i := range b.Tables {
		if b.Tables[i].QualifiedName() == qualified {
			return &b.Tables[i]
		}
	}
	return nil
}

// normalize puts b in its canonical order and replaces nil lists with empty ones.
func (b *Baseline) normalize() {
	if b.Tables == nil {
		b.Tables = []Table{}
	}
	slices.SortFunc(b.Tables, func(x, y Table) int {
		return cmpJoin(strings.Compare(x.Schema, y.Schema), strings.Compare(x.Name, y.Name))
	})
	for i := range b.Tables {
		t := &b.Tables[i]
		if t.Columns == nil {
			t.Columns = []Column{}
		}
		slices.SortFunc(t.Indexes, func(x, y Index) int { return strings.Compare(x.Name, y.Name) })
		slices.SortFunc(t.ForeignKeys, func(x, y ForeignKey) int { return strings.Compare(x.Name, y.Name) })
		slices.SortFunc(t.Checks, func(x, y Check) int { return strings.Compare(x.Name, y.Name) })
	}
}

func cmpJoin(cs ...int) int {
	for _, c := range cs {
		if c != 0 {
			return c
		}
	}
	return 0
}

// Encode writes b as indented JSON, one field per line, in canonical order.
func (b *Baseline) Encode(w io.Writer) error {
	b.normalize()
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(b); err != nil {
		return fmt.Errorf("encode baseline: %w", err)
	}
	return nil
}

// WriteFile writes b to path, replacing it only once the whole file is written.
func (b *Baseline) WriteFile(path string) error {
	var buf bytes.Buffer
	if err := b.Encode(&buf); err != nil {
		return err
	}
	return writeFileAtomic(path, buf.Bytes())
}

// DecodeBaseline reads a baseline. Unknown fields are errors (a misspelt hand edit such
// as "minRows" must not be silently ignored), and so is a version newer than
// BaselineVersion (ErrBaselineVersion). name is used in messages.
func DecodeBaseline(r io.Reader, name string) (*Baseline, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("read baseline %s: %w", name, err)
	}
	// The header first, so that a newer file is reported as newer, not as malformed.
	var head struct {
		Format  string          `json:"format"`
		Version json.RawMessage `json:"version"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return nil, fmt.Errorf("%w: %s is not a baseline JSON file: %v", ErrBadBaseline, name, jsonErr(data, err))
	}
	if head.Format != BaselineFormat {
		return nil, fmt.Errorf("%w: %s has format %q, want %q (capture one with `sluice backupverify baseline`)",
			ErrBadBaseline, name, head.Format, BaselineFormat)
	}
	var version int
	if err := json.Unmarshal(head.Version, &version); err != nil || version < 1 {
		return nil, fmt.Errorf("%w: %s has version %s, want a positive integer", ErrBadBaseline, name, head.Version)
	}
	if version > BaselineVersion {
		return nil, fmt.Errorf("%w: %s has format version %d, this sluice reads versions up to %d: "+
			"it was written by a newer sluice; upgrade sluice to verify against it", ErrBaselineVersion, name, version, BaselineVersion)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	b := &Baseline{}
	if err := dec.Decode(b); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrBadBaseline, name, jsonErr(data, err))
	}
	if err := b.check(); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrBadBaseline, name, err)
	}
	b.normalize()
	return b, nil
}

// ReadBaselineFile reads the baseline at path.
func ReadBaselineFile(path string) (*Baseline, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadBaseline, err)
	}
	defer f.Close()
	return DecodeBaseline(f, path)
}

// check rejects what the decoder lets through but Verify cannot use.
func (b *Baseline) check() error {
	seen := map[string]bool{}
	for i, t := range b.Tables {
		if t.Schema == "" || t.Name == "" {
			return fmt.Errorf("tables[%d]: schema and name are required", i)
		}
		q := t.QualifiedName()
		if seen[q] {
			return fmt.Errorf("table %s listed twice", q)
		}
		seen[q] = true
		if t.Rows < 0 || t.MinRows < 0 {
			return fmt.Errorf("table %s: negative row count", q)
		}
		cols := map[string]bool{}
		for j, c := range t.Columns {
			if c.Name == "" || c.Type == "" {
				return fmt.Errorf("table %s: columns[%d]: name and type are required", q, j)
			}
			if cols[c.Name] {
				return fmt.Errorf("table %s: column %s listed twice", q, c.Name)
			}
			cols[c.Name] = true
		}
	}
	return nil
}

// jsonErr adds the line of a syntax error, which encoding/json reports only as an offset.
func jsonErr(data []byte, err error) error {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	var off int64
	switch {
	case errors.As(err, &se):
		off = se.Offset
	case errors.As(err, &te):
		off = te.Offset
	default:
		return err
	}
	line := 1 + bytes.Count(data[:min(int(off), len(data))], []byte("\n"))
	return fmt.Errorf("line %d: %w", line, err)
}

// writeFileAtomic writes through a temporary file beside path and renames it into place,
// so a crash never leaves half a file.
func writeFileAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
