package backupverify

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// DefaultEstimateAbove is CaptureOptions.EstimateAbove's default, in rows.
const DefaultEstimateAbove = 10_000_000

// CaptureOptions tune Capture. The zero value captures every user schema with exact row
// counts for tables up to DefaultEstimateAbove rows.
type CaptureOptions struct {
	// Schemas limits the capture to these schemas; default every schema but PostgreSQL's
	// own (pg_*, information_schema). Tables that belong to an extension are left out:
	// the extension recreates them.
	Schemas []string
	// EstimateAbove: a table the planner estimates (pg_class.reltuples) above this many
	// rows is not counted, its row count is the estimate and Table.RowsEstimated says so.
	// Zero means DefaultEstimateAbove; negative counts every table exactly.
	EstimateAbove int64
	// Checksums reads every table whole to record its content checksum (and an exact row
	// count), for restore-verify to compare a restored dump with.
	Checksums bool
}

// querier is what capture needs of a connection or a transaction.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// rowMode says how capture fills Table.Rows.
type rowMode int

const (
	rowsByOptions rowMode = iota // count or estimate, per CaptureOptions
	rowsNone                     // leave zero: the caller counts (restore-verify counts while checksumming)
)

// Capture records the shape and row counts of the database at dsn, in one consistent
// snapshot, only reading (the session is read-only).
func Capture(ctx context.Context, dsn string, o CaptureOptions) (*Baseline, error) {
	conn, err := connect(ctx, dsn, true)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, fmt.Errorf("capture %s: begin: %w", Describe(conn.Config()), err)
	}
	// Read-only: nothing to commit, and a rollback cannot lose anything.
	defer tx.Rollback(context.WithoutCancel(ctx))
	b, err := capture(ctx, tx, o, rowsByOptions)
	if err != nil {
		return nil, fmt.Errorf("capture %s: %w", Describe(conn.Config()), err)
	}
	return b, nil
}

// catalogTable is a table as capture finds it, before its details are filled in.
type catalogTable struct {
	oid       uint32
	estimated int64
	*Table
}

func capture(ctx context.Context, q pgx.Tx, o CaptureOptions, mode rowMode) (*Baseline, error) {
	b := &Baseline{Format: BaselineFormat, Version: BaselineVersion, CapturedAt: time.Now().UTC().Truncate(time.Second)}
	var version string
	if err := q.QueryRow(ctx, "SELECT current_database(), current_setting('server_version')").Scan(&b.Database, &version); err != nil {
		return nil, fmt.Errorf("server version: %w", err)
	}
	b.ServerVersion, _, _ = strings.Cut(version, " ")

	tables, err := listTables(ctx, q, o.Schemas)
	if err != nil {
		return nil, err
	}
	byOID := make(map[uint32]*catalogTable, len(tables))
	oids := make([]uint32, len(tables))
	for i, t := range tables {
		byOID[t.oid] = t
		oids[i] = t.oid
	}
	for _, step := range []func(context.Context, querier, []uint32, map[uint32]*catalogTable) error{
		readColumns, readConstraints, readIndexes,
	} {
		if err := step(ctx, q, oids, byOID); err != nil {
			return nil, err
		}
	}
	hashOK := false
	if o.Checksums && mode == rowsByOptions {
		if hashOK, err = hashSupported(ctx, q); err != nil {
			return nil, err
		}
	}
	for _, t := range tables {
		if err := fillRows(ctx, q, t, o, mode, hashOK); err != nil {
			return nil, err
		}
		b.Tables = append(b.Tables, *t.Table)
	}
	b.normalize()
	return b, nil
}

func listTables(ctx context.Context, q querier, schemas []string) ([]*catalogTable, error) {
	var filter []string // nil: no filter
	if len(schemas) > 0 {
		filter = schemas
	}
	rows, err := q.Query(ctx, `
		SELECT c.oid, n.nspname::text, c.relname::text, c.reltuples::bigint
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE c.relkind IN ('r', 'p')
		  AND n.nspname <> 'information_schema' AND n.nspname !~ '^pg_'
		  AND ($1::text[] IS NULL OR n.nspname = ANY($1))
		  AND NOT EXISTS (SELECT 1 FROM pg_depend d
		                  WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
		ORDER BY 2, 3`, filter)
	if err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	var tables []*catalogTable
	for rows.Next() {
		t := &catalogTable{Table: &Table{}}
		if err := rows.Scan(&t.oid, &t.Schema, &t.Name, &t.estimated); err != nil {
			return nil, fmt.Errorf("list tables: %w", err)
		}
		tables = append(tables, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	return tables, nil
}

func readColumns(ctx context.Context, q querier, oids []uint32, byOID map[uint32]*catalogTable) error {
	rows, err := q.Query(ctx, `
		SELECT a.attrelid, a.attname::text, format_type(a.atttypid, a.atttypmod), NOT a.attnotnull,
		       coalesce(pg_get_expr(d.adbin, d.adrelid), ''), a.attidentity::text, a.attgenerated::text
		FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
		WHERE a.attrelid = ANY($1) AND a.attnum > 0 AND NOT a.attisdropped
		ORDER BY a.attrelid, a.attnum`, oids)
	if err != nil {
		return fmt.Errorf("read columns: %w", err)
	}
	for rows.Next() {
		var oid uint32
		var c Column
		var identity, generated string
		if err := rows.Scan(&oid, &c.Name, &c.Type, &c.Nullable, &c.Default, &identity, &generated); err != nil {
			return fmt.Errorf("read columns: %w", err)
		}
		c.Identity = map[string]string{"a": "always", "d": "by default"}[identity]
		c.Generated = map[string]string{"s": "stored"}[generated]
		t := byOID[oid]
		t.Columns = append(t.Columns, c)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read columns: %w", err)
	}
	return nil
}

// fkActions maps pg_constraint.confupdtype/confdeltype; NO ACTION, the default, is "".
var fkActions = map[string]string{"r": "RESTRICT", "c": "CASCADE", "n": "SET NULL", "d": "SET DEFAULT"}

func readConstraints(ctx context.Context, q querier, oids []uint32, byOID map[uint32]*catalogTable) error {
	rows, err := q.Query(ctx, `
		SELECT con.conrelid, con.conname::text, con.contype::text, pg_get_constraintdef(con.oid),
		       ARRAY(SELECT a.attname::text FROM unnest(con.conkey) WITH ORDINALITY k(num, ord)
		             JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.num ORDER BY k.ord),
		       coalesce(fn.nspname::text, ''), coalesce(fc.relname::text, ''),
		       ARRAY(SELECT a.attname::text FROM unnest(con.confkey) WITH ORDINALITY k(num, ord)
		             JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.num ORDER BY k.ord),
		       con.confupdtype::text, con.confdeltype::text
		FROM pg_constraint con
		LEFT JOIN pg_class fc ON fc.oid = con.confrelid
		LEFT JOIN pg_namespace fn ON fn.oid = fc.relnamespace
		WHERE con.conrelid = ANY($1) AND con.contype IN ('p', 'f', 'c')`, oids)
	if err != nil {
		return fmt.Errorf("read constraints: %w", err)
	}
	for rows.Next() {
		var oid uint32
		var name, typ, def, refSchema, refTable, onUpdate, onDelete string
		var cols, refCols []string
		if err := rows.Scan(&oid, &name, &typ, &def, &cols, &refSchema, &refTable, &refCols, &onUpdate, &onDelete); err != nil {
			return fmt.Errorf("read constraints: %w", err)
		}
		t := byOID[oid]
		switch typ {
		case "p":
			t.PrimaryKey = cols
		case "f":
			t.ForeignKeys = append(t.ForeignKeys, ForeignKey{
				Name: name, Columns: cols, ReferencesTable: qualify(refSchema, refTable), ReferencesColumns: refCols,
				OnUpdate: fkActions[onUpdate], OnDelete: fkActions[onDelete],
			})
		case "c":
			t.Checks = append(t.Checks, Check{Name: name, Definition: def})
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read constraints: %w", err)
	}
	return nil
}

func readIndexes(ctx context.Context, q querier, oids []uint32, byOID map[uint32]*catalogTable) error {
	rows, err := q.Query(ctx, `
		SELECT i.indrelid, c.relname::text, pg_get_indexdef(i.indexrelid)
		FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
		WHERE i.indrelid = ANY($1)`, oids)
	if err != nil {
		return fmt.Errorf("read indexes: %w", err)
	}
	for rows.Next() {
		var oid uint32
		var ix Index
		if err := rows.Scan(&oid, &ix.Name, &ix.Definition); err != nil {
			return fmt.Errorf("read indexes: %w", err)
		}
		t := byOID[oid]
		t.Indexes = append(t.Indexes, ix)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read indexes: %w", err)
	}
	return nil
}

func fillRows(ctx context.Context, q pgx.Tx, t *catalogTable, o CaptureOptions, mode rowMode, hashOK bool) error {
	if mode == rowsNone {
		return nil
	}
	if o.Checksums {
		sum, err := checksum(ctx, q, t.Schema, t.Name, hashOK)
		if err != nil {
			return err
		}
		t.Rows, t.Checksum = sum.Rows, sum.Checksum
		return nil
	}
	limit := o.EstimateAbove
	if limit == 0 {
		limit = DefaultEstimateAbove
	}
	// reltuples is -1 for a table never vacuumed or analyzed: no estimate, so count.
	if limit > 0 && t.estimated > limit {
		t.Rows, t.RowsEstimated = t.estimated, true
		return nil
	}
	if err := q.QueryRow(ctx, "SELECT count(*) FROM "+pgx.Identifier{t.Schema, t.Name}.Sanitize()).Scan(&t.Rows); err != nil {
		return fmt.Errorf("count rows of %s: %w", t.QualifiedName(), err)
	}
	return nil
}
