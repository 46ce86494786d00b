package backupverify

import (
	"context"
	"fmt"
	"sync"

	"github.com/jackc/pgx/v5"
)

// checksumVersion prefixes every checksum, so that a change of algorithm shows as a
// different kind of value rather than as changed content.
const checksumVersion = "v1:"

// tableSum is a table's exact row count and content checksum.
type tableSum struct {
	Rows     int64
	Checksum string
}

// checksumSQL reads the table once: the count, and the sum of a 64-bit hash of every
// row's text. A sum does not depend on row order, so no sort is needed, and a duplicated
// row counts twice (an XOR would cancel it out). sum(bigint) is exact (numeric), and the
// row text is the same on every server thanks to sessionSettings.
func checksumSQL(schema, name string) string {
	return "SELECT count(*), coalesce(sum(hashtextextended(ROW(sluice_row.*)::text, 0)), 0)::text FROM " +
		pgx.Identifier{schema, name}.Sanitize() + " AS sluice_row"
}

func checksum(ctx context.Context, q querier, schema, name string) (tableSum, error) {
	var s tableSum
	var sum string
	if err := q.QueryRow(ctx, checksumSQL(schema, name)).Scan(&s.Rows, &sum); err != nil {
		return s, fmt.Errorf("checksum %s: %w", qualify(schema, name), err)
	}
	s.Checksum = checksumVersion + sum
	return s, nil
}

// checksumAll checksums tables over jobs connections to dsn that share one snapshot, so
// the sums of a database in use are those of one moment. Results are keyed by qualified
// table name.
func checksumAll(ctx context.Context, dsn string, readOnly bool, tables []Table, jobs int) (map[string]tableSum, error) {
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
	worker := func(q querier) {
		for t := range work {
			s, err := checksum(ctx, q, t.Schema, t.Name)
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
