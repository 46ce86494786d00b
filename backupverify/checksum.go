package backupverify

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Checksum methods, the prefix of every checksum: values of different methods are never
// equal, so a change of method cannot pass for unchanged content.
const (
	// methodHash sums hash_record_extended(row, 0): each value hashed by its type's own
	// hash function, without rendering it as text (PostgreSQL 14+). Several times faster
	// than methodText; values equal for their type (1.0 and 1.00) hash equal.
	methodHash = "h1:"
	// methodText sums hashtextextended(row::text, 0): for servers before 14 and tables
	// with a type that has no hash function (json, point, ...).
	methodText = "v1:"
)

// minHashServer is the first server version with hash_record_extended.
const minHashServer = 140000

// undefinedFunction is the SQLSTATE of "could not identify a hash function for type".
const undefinedFunction = "42883"

// tableSum is a table's exact row count and content checksum.
type tableSum struct {
	Rows     int64
	Checksum string
}

// checksumSQL reads the table once: the count, and the sum of a 64-bit hash of every row.
// A sum does not depend on row order, so no sort is needed, and a duplicated row counts
// twice (an XOR would cancel it out). sum(bigint) is exact (numeric). Text is rendered the
// same on every server thanks to sessionSettings.
func checksumSQL(method, schema, name string) string {
	hash := "hash_record_extended(ROW(sluice_row.*), 0)"
	if method == methodText {
		hash = "hashtextextended(ROW(sluice_row.*)::text, 0)"
	}
	return "SELECT count(*), coalesce(sum(" + hash + "), 0)::text FROM " +
		pgx.Identifier{schema, name}.Sanitize() + " AS sluice_row"
}

// checksum sums a table with methodHash when hashOK, falling back to methodText for a table
// whose types cannot be hashed: the choice depends only on the server and the column
// types, so a restore and its source choose alike.
func checksum(ctx context.Context, tx pgx.Tx, schema, name string, hashOK bool) (tableSum, error) {
	if hashOK {
		sp, err := tx.Begin(ctx)
		if err != nil {
			return tableSum{}, fmt.Errorf("checksum %s: %w", qualify(schema, name), err)
		}
		s, err := sumTable(ctx, sp, methodHash, schema, name)
		if err == nil {
			return s, sp.Commit(ctx)
		}
		var pgErr *pgconn.PgError
		if rbErr := sp.Rollback(ctx); rbErr != nil || !errors.As(err, &pgErr) || pgErr.Code != undefinedFunction {
			return tableSum{}, err
		}
	}
	return sumTable(ctx, tx, methodText, schema, name)
}

func sumTable(ctx context.Context, q querier, method, schema, name string) (tableSum, error) {
	var s tableSum
	var sum string
	if err := q.QueryRow(ctx, checksumSQL(method, schema, name)).Scan(&s.Rows, &sum); err != nil {
		return s, fmt.Errorf("checksum %s: %w", qualify(schema, name), err)
	}
	s.Checksum = method + sum
	return s, nil
}

// hashSupported reports whether the server has hash_record_extended.
func hashSupported(ctx context.Context, q querier) (bool, error) {
	var version int
	if err := q.QueryRow(ctx, "SELECT current_setting('server_version_num')::int").Scan(&version); err != nil {
		return false, fmt.Errorf("server version: %w", err)
	}
	return version >= minHashServer, nil
}

// checksumAll checksums tables over jobs connections to dsn that share one snapshot, so
// the sums of a database in use are those of one moment. Results are keyed by qualified
// table name.
func checksumAll(ctx context.Context, dsn string, readOnly bool, tables []Table, jobs int, hashOK bool) (map[string]tableSum, error) {
	jobs = max(1, min(jobs, len(tables)))
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	lead, err := connect(ctx, dsn, readOnly)
	if err != nil {
		return nil, err
	}
	defer lead.Close(context.WithoutCancel(ctx))
	leadTx, err := lead.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, fmt.Errorf("checksum: begin: %w", err)
	}
	defer leadTx.Rollback(context.WithoutCancel(ctx))
	var snapshot string
	if jobs > 1 {
		if err := leadTx.QueryRow(ctx, "SELECT pg_export_snapshot()").Scan(&snapshot); err != nil {
			return nil, fmt.Errorf("checksum: export snapshot: %w", err)
		}
	}

	work := make(chan Table)
	var mu sync.Mutex
	sums := make(map[string]tableSum, len(tables))
	var wg sync.WaitGroup
	worker := func(tx pgx.Tx) {
		for t := range work {
			s, err := checksum(ctx, tx, t.Schema, t.Name, hashOK)
			if err != nil {
				cancel(err)
				continue
			}
			mu.Lock()
			sums[t.QualifiedName()] = s
			mu.Unlock()
		}
	}
	wg.Go(func() { worker(leadTx) })
	for range jobs - 1 {
		wg.Go(func() {
			tx, closeTx, err := importSnapshot(ctx, dsn, readOnly, snapshot)
			if err != nil {
				cancel(err)
				return
			}
			defer closeTx()
			worker(tx)
		})
	}
	// Feed until done or cancelled; the workers drain what they took, then end.
feed:
	for _, t := range tables {
		select {
		case work <- t:
		case <-ctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
	// Cancelled only by a failed worker (its error) or by the caller.
	if err := context.Cause(ctx); err != nil {
		return nil, err
	}
	return sums, nil
}

// importSnapshot opens a connection whose transaction sees snapshot.
func importSnapshot(ctx context.Context, dsn string, readOnly bool, snapshot string) (pgx.Tx, func(), error) {
	conn, err := connect(ctx, dsn, readOnly)
	if err != nil {
		return nil, nil, err
	}
	closeConn := func() { conn.Close(context.WithoutCancel(ctx)) }
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		closeConn()
		return nil, nil, fmt.Errorf("checksum: begin: %w", err)
	}
	if _, err := tx.Exec(ctx, "SET TRANSACTION SNAPSHOT '"+snapshot+"'"); err != nil {
		closeConn()
		return nil, nil, fmt.Errorf("checksum: import snapshot: %w", err)
	}
	return tx, func() {
		_ = tx.Rollback(context.WithoutCancel(ctx))
		closeConn()
	}, nil
}
