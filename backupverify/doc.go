// Package backupverify is Sluice's backup gate for PostgreSQL (pgx v5, no NATS): it
// records a baseline of a database, verifies a live database against it, and proves a
// backup restores by restoring it into a scratch database and comparing the result with
// the baseline and the source.
//
//   - Capture records every table (schema-qualified): columns with types, nullability and
//     defaults, the primary key, indexes, foreign keys, check constraints, and the row
//     count (exact, or the planner's estimate above CaptureOptions.EstimateAbove rows,
//     flagged as such).
//   - Verify compares a capture with a baseline under a Policy. Each difference is a
//     Finding naming the table and, where it applies, the column.
//   - RestoreVerify restores a dump (pg_dump's custom format, taken by Sluice or given)
//     with pg_restore into a fresh database on a given server, or into a throwaway
//     cluster (package pgcluster), then compares it with the baseline and, when the source
//     is reachable, with the source: schema, exact row counts, and a per-table content
//     checksum computed in SQL.
//
// Errors that stop a check before it runs wrap ErrBadDSN, ErrUnreachable (with a connect
// timeout, DefaultConnectTimeout unless the DSN sets connect_timeout), ErrAuth,
// ErrNoDatabase, ErrBadBaseline, ErrBaselineVersion, ErrBadInput, ErrUnsupportedDump,
// ErrDump, ErrScratch or pgcluster.ErrNoBinaries; their messages say what to do. A dump
// that is truncated or corrupt is not an error but a failed Report.
//
// # Baseline file format (version 1)
//
// A baseline is a JSON object, written with two-space indentation, one field per line:
//
//	{
//	  "format": "sluice.backupverify.baseline",   // always this value
//	  "version": 1,                               // BaselineVersion
//	  "captured_at": "2025-01-31T12:00:00Z",      // UTC, whole seconds
//	  "server_version": "15.18",
//	  "database": "app",
//	  "tables": [                                 // sorted by schema, then name
//	    {
//	      "schema": "public",
//	      "name": "orders",
//	      "columns": [                            // in table order
//	        {"name": "id", "type": "bigint", "nullable": false, "identity": "by default"},
//	        {"name": "total", "type": "numeric(10,2)", "nullable": false, "default": "0"},
//	        {"name": "note", "type": "text", "nullable": true}
//	      ],
//	      "primary_key": ["id"],                  // in key order; omitted when none
//	      "indexes": [{"name": "orders_pkey", "definition": "CREATE UNIQUE INDEX ..."}],
//	      "foreign_keys": [{"name": "orders_customer_id_fkey", "columns": ["customer_id"],
//	                        "references_table": "public.customers", "references_columns": ["id"],
//	                        "on_delete": "CASCADE"}],
//	      "checks": [{"name": "orders_total_check", "definition": "CHECK ((total >= (0)::numeric))"}],
//	      "rows": 1000,
//	      "rows_estimated": true,                 // only when rows is an estimate
//	      "min_rows": 10,                         // optional, written by hand
//	      "checksum": "h1:123456789"              // only with `baseline --checksums`
//	    }
//	  ]
//	}
//
// Types are rendered by PostgreSQL's format_type and definitions by pg_get_indexdef,
// pg_get_constraintdef and pg_get_expr with an empty search path, so every name in them
// is schema-qualified and two servers render the same schema the same way. Indexes,
// foreign keys and checks are sorted by name. Omitted optional fields read as their zero
// value.
//
// Versioning: readers reject unknown fields (a misspelt hand edit is an error, not
// ignored) and any version above the one they know (ErrBaselineVersion, "upgrade
// sluice"). A change that adds or changes a field bumps the version; readers keep
// reading every older version.
//
// # Report format (version 1)
//
// A Report is JSON too: format "sluice.backupverify.report", version, check ("verify" or
// "restore-verify"), passed, a one-line summary, the database checked, the baseline's
// identity, the policy, for restore-verify the dump, target and timings, every table's
// row counts (baseline, checked, source) and checksums, and the findings, most severe
// first. Each finding has a rule (the Rule* constants), a severity, the table, column
// and index or constraint it concerns, what it was compared against (baseline, source or
// dump), a message, and the expected and actual values. Findings at or above
// Policy.FailOn (default medium) fail the check; the others are notes.
//
// # Checksums
//
// A table's checksum is its method followed by the sum, as an exact decimal, of a 64-bit
// hash of every row: one sequential scan, no sort, independent of row order, sensitive to
// duplicated rows. Method "h1:" hashes each row with hash_record_extended (every value by
// its type's own hash function, PostgreSQL 14 and later); method "v1:" hashes the row's
// text, hashtextextended(row::text, 0), for older servers and for tables with a type
// that has no hash function (json, point, ...). The choice depends only on the server
// versions and the column types, so a restore and its source agree; text is rendered
// under fixed session settings (DateStyle ISO, TimeZone UTC, extra_float_digits 1,
// bytea_output hex, ...) and the scratch database takes the dump's encoding, so two
// servers render the same data alike.
package backupverify
