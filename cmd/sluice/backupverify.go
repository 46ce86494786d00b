package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/sluice-ci/sluice/backupverify"
)

func newBackupVerifyCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "backupverify",
		Short: "The backup gate, locally: PostgreSQL baselines, live checks, restore-and-compare",
		Long: `Check a PostgreSQL database and its backups without a fleet (no NATS needed).

  baseline        record the shape of a database: tables, columns and types, keys, indexes,
                  row counts; commit the file and verify against it later
  verify          compare a live database with a baseline: a missing table or column, a
                  changed type, fewer rows than a minimum or than the baseline allows fail
  restore-verify  restore a dump (or a fresh pg_dump) into a scratch database or a throwaway
                  cluster and compare it with the baseline and the source

The DSN is a libpq connection string, postgres://user:password@host:5432/dbname or
"host=... dbname=...". --dsn-env VAR reads it from the environment instead, which keeps the
password out of the shell history and the process list.

Exit codes: 0 passed, 1 problems found, 2 the check could not run (bad flags or files, an
unreachable server, bad credentials, missing PostgreSQL binaries), 130 interrupted.`,
		Example: `  sluice backupverify baseline --dsn-env DATABASE_URL --out backup/baseline.json
  sluice backupverify verify --dsn-env DATABASE_URL --baseline backup/baseline.json
  sluice backupverify restore-verify --dump nightly.dump --dsn-env DATABASE_URL --baseline backup/baseline.json`,
		Args: noArgs,
		RunE: showHelp,
	}
	cmd.AddCommand(newBaselineCmd(a), newVerifyCmd(a), newRestoreVerifyCmd(a))
	return cmd
}

// dsnFlags are --dsn and --dsn-env, of which a command takes one.
type dsnFlags struct {
	name      string // "dsn" or "scratch-dsn"
	dsn, env  string
	mustGiven bool
}

func (d *dsnFlags) register(cmd *cobra.Command, what string) {
	cmd.Flags().StringVar(&d.dsn, d.name, "", "DSN of "+what+": postgres://user:password@host:5432/dbname")
	cmd.Flags().StringVar(&d.env, d.name+"-env", "", "environment variable holding the DSN of "+what+" (instead of --"+d.name+")")
}

// value is the DSN given, "" when none; a usage error when both or neither (if required).
func (d *dsnFlags) value(cmd *cobra.Command) (string, error) {
	switch {
	case d.dsn != "" && d.env != "":
		return "", usageErrorf(cmd, "--%s and --%s-env exclude each other", d.name, d.name)
	case d.env != "":
		v := os.Getenv(d.env)
		if v == "" {
			return "", usageErrorf(cmd, "--%s-env %s: the variable is not set or empty", d.name, d.env)
		}
		return v, nil
	case d.dsn == "" && d.mustGiven:
		return "", usageErrorf(cmd, "--%s or --%s-env is required", d.name, d.name)
	}
	return d.dsn, nil
}

// policyFlags are the verification policy's flags.
type policyFlags struct {
	minRows    int64
	maxDropPct float64
	failOn     string
}

func (p *policyFlags) register(cmd *cobra.Command) {
	f := cmd.Flags()
	f.Int64Var(&p.minRows, "min-rows", 0, "every table must hold at least this many rows (a baseline's own min_rows overrides it)")
	f.Float64Var(&p.maxDropPct, "max-drop-pct", backupverify.DefaultMaxDropPct, "a table may hold at most this many percent fewer rows than in the baseline")
	f.StringVar(&p.failOn, "fail-on", string(backupverify.SeverityMedium), "findings of this severity or higher fail: info, low, medium, high or critical")
}

func (p *policyFlags) policy(cmd *cobra.Command) (backupverify.Policy, error) {
	pol := backupverify.Policy{MinRows: p.minRows, MaxDropPct: p.maxDropPct, FailOn: backupverify.Severity(p.failOn)}
	if err := pol.Validate(); err != nil {
		return pol, usageError(cmd, err)
	}
	return pol, nil
}

// reportFlags choose where a report goes.
type reportFlags struct {
	asJSON bool
	file   string
}

func (r *reportFlags) register(cmd *cobra.Command) {
	cmd.Flags().BoolVar(&r.asJSON, "json", false, "print the report as JSON instead of text")
	cmd.Flags().StringVar(&r.file, "report", "", "also write the JSON report to `FILE`")
}

// finish prints the report and maps its verdict to the exit code.
func (r *reportFlags) finish(a *app, rep *backupverify.Report) error {
	if r.file != "" {
		if err := os.WriteFile(r.file, rep.JSON(), 0o644); err != nil {
			return withCode(exitUsage, fmt.Errorf("--report: %w", err))
		}
	}
	var err error
	if r.asJSON {
		err = rep.EncodeJSON(a.stdout)
	} else {
		err = rep.WriteText(a.stdout)
	}
	if err != nil {
		return err
	}
	if !rep.Passed {
		return &exitError{code: exitFailed, err: errors.New(rep.Summary), quiet: true}
	}
	return nil
}

// checkError maps an error that kept a check from running: 130 when interrupted, else 2.
func checkError(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return withCode(exitInterrupted, fmt.Errorf("interrupted: %w", context.Cause(ctx)))
	}
	return withCode(exitUsage, err)
}

func newBaselineCmd(a *app) *cobra.Command {
	var (
		src           = dsnFlags{name: "dsn", mustGiven: true}
		out           string
		schemas       []string
		estimateAbove int64
		checksums     bool
	)
	cmd := &cobra.Command{
		Use:   "baseline",
		Short: "Record a database's tables, columns, keys, indexes and row counts",
		Long: `Capture the baseline of a database, in one read-only snapshot: every table of the user
schemas (or --schema), with its columns, types, nullability and defaults, primary key,
indexes, foreign keys, check constraints and row count, as a versioned JSON file in a
stable order, so that a diff of two baselines reads as the change.

Tables the planner estimates above --estimate-above rows are not counted; their count is
the estimate, marked "rows_estimated". --checksums reads every table to record a content
checksum, for restore-verify to compare a dump taken at the same moment with. A table's
"min_rows" may be added by hand.`,
		Example: `  sluice backupverify baseline --dsn-env DATABASE_URL --out backup/baseline.json
  sluice backupverify baseline --dsn postgres://app@db/shop --schema public --schema billing`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			dsn, err := src.value(cmd)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			b, err := backupverify.Capture(ctx, dsn, backupverify.CaptureOptions{
				Schemas: schemas, EstimateAbove: estimateAbove, Checksums: checksums,
			})
			if err != nil {
				return checkError(ctx, err)
			}
			if out == "" || out == "-" {
				return b.Encode(a.stdout)
			}
			if err := b.WriteFile(out); err != nil {
				return withCode(exitUsage, fmt.Errorf("--out: %w", err))
			}
			var rows int64
			for _, t := range b.Tables {
				rows += t.Rows
			}
			a.note("wrote %s: %d tables, %d rows, from %s", out, len(b.Tables), rows, backupverify.DescribeDSN(dsn))
			return nil
		},
	}
	src.register(cmd, "the database")
	f := cmd.Flags()
	f.StringVarP(&out, "out", "o", "", "write the baseline to `FILE` (default: standard output)")
	f.StringArrayVar(&schemas, "schema", nil, "capture only this schema (repeatable; default: every user schema)")
	f.Int64Var(&estimateAbove, "estimate-above", backupverify.DefaultEstimateAbove, "estimate, rather than count, tables above this many rows (-1: count all)")
	f.BoolVar(&checksums, "checksums", false, "record each table's content checksum (reads every table)")
	return cmd
}

func newVerifyCmd(a *app) *cobra.Command {
	var (
		src      = dsnFlags{name: "dsn", mustGiven: true}
		baseline string
		pf       policyFlags
		rf       reportFlags
		schemas  []string
	)
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Compare a live database with its baseline",
		Long: `Capture the database (read-only) and compare it with a baseline. Problems, which fail the
check: a missing table or column, a changed column type, a dropped primary or foreign key,
a table with fewer rows than --min-rows (or its own min_rows), or more than --max-drop-pct
percent fewer rows than in the baseline. Additions (a new table, a new nullable column)
and lesser changes (an index, a default) are reported as notes and pass.

Each finding names the table and column. The report prints as text, or JSON with --json.`,
		Example: `  sluice backupverify verify --dsn-env DATABASE_URL --baseline backup/baseline.json
  sluice backupverify verify --dsn-env DATABASE_URL --baseline backup/baseline.json --max-drop-pct 5 --min-rows 1 --json`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			dsn, err := src.value(cmd)
			if err != nil {
				return err
			}
			if baseline == "" {
				return usageErrorf(cmd, "--baseline is required (capture one with 'sluice backupverify baseline')")
			}
			p, err := pf.policy(cmd)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			base, err := backupverify.ReadBaselineFile(baseline)
			if err != nil {
				return withCode(exitUsage, err)
			}
			rep, err := backupverify.VerifyLive(ctx, dsn, base, p, backupverify.CaptureOptions{Schemas: schemas})
			if err != nil {
				return checkError(ctx, err)
			}
			return rf.finish(a, rep)
		},
	}
	src.register(cmd, "the database")
	cmd.Flags().StringVar(&baseline, "baseline", "", "the baseline `FILE` to compare with (required)")
	cmd.Flags().StringArrayVar(&schemas, "schema", nil, "compare only this schema (repeatable)")
	pf.register(cmd)
	rf.register(cmd)
	return cmd
}

func newRestoreVerifyCmd(a *app) *cobra.Command {
	var (
		src      = dsnFlags{name: "dsn"}
		scratch  = dsnFlags{name: "scratch-dsn"}
		dump     string
		baseline string
		pgBin    string
		workDir  string
		jobs     int
		roles    []string
		schemas  []string
		pf       policyFlags
		rf       reportFlags
	)
	cmd := &cobra.Command{
		Use:   "restore-verify",
		Short: "Prove a backup restores: restore it and compare with the baseline and the source",
		Long: `Restore a backup with pg_restore into a scratch database and compare the result with the
baseline and, when the source is reachable, with the source itself: schema, exact row
counts and a per-table content checksum computed in SQL.

The backup is --dump FILE (pg_dump's custom, directory or tar format), or, without --dump,
a fresh 'pg_dump --format=custom' of --dsn. With both, the dump is restored and compared
with --dsn. The scratch database is a fresh database on --scratch-dsn's server (its user
needs CREATEDB; the database is dropped afterwards) or, by default, a throwaway cluster
started with initdb from the machine's PostgreSQL binaries (/usr/lib/postgresql/*/bin or
--pg-bin) on a free loopback port and removed afterwards. As root, the cluster runs as the
user postgres (or nobody). The source's roles are created in the throwaway cluster so that
policies and grants naming them restore; --role adds others.

A dump that is truncated, corrupt or does not restore is a failed check (exit 1); a
plain-SQL dump cannot be restored by pg_restore and is refused (exit 2).`,
		Example: `  sluice backupverify restore-verify --dump nightly.dump --dsn-env DATABASE_URL --baseline backup/baseline.json
  sluice backupverify restore-verify --dsn-env DATABASE_URL --baseline backup/baseline.json
  sluice backupverify restore-verify --dump nightly.dump --baseline backup/baseline.json --scratch-dsn-env SCRATCH_URL`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			source, err := src.value(cmd)
			if err != nil {
				return err
			}
			scratchDSN, err := scratch.value(cmd)
			if err != nil {
				return err
			}
			if dump == "" && source == "" {
				return usageErrorf(cmd, "give the backup with --dump FILE, or the database to dump with --dsn or --dsn-env")
			}
			if baseline == "" && source == "" {
				return usageErrorf(cmd, "--baseline is required unless --dsn names a source to compare with")
			}
			if jobs < 0 {
				return usageErrorf(cmd, "--jobs %d: must be 1 or more (0: one per CPU, up to 4)", jobs)
			}
			p, err := pf.policy(cmd)
			if err != nil {
				return err
			}
			o := backupverify.RestoreOptions{
				Policy: p, SourceDSN: source, DumpFile: dump, ScratchDSN: scratchDSN, Roles: roles, Schemas: schemas,
				PGBin: pgBin, Jobs: jobs, WorkDir: workDir, Log: prefixWriter{a: a},
			}
			if baseline != "" {
				if o.Baseline, err = backupverify.ReadBaselineFile(baseline); err != nil {
					return withCode(exitUsage, err)
				}
			}
			ctx := cmd.Context()
			rep, err := backupverify.RestoreVerify(ctx, o)
			if err != nil {
				return checkError(ctx, err)
			}
			return rf.finish(a, rep)
		},
	}
	src.register(cmd, "the source database (dumped when --dump is not given; compared with when reachable)")
	scratch.register(cmd, "a server to restore on, in a fresh database (default: a throwaway cluster)")
	f := cmd.Flags()
	f.StringVar(&dump, "dump", "", "the backup to verify: a pg_dump custom, directory or tar archive `FILE`")
	f.StringVar(&baseline, "baseline", "", "the baseline `FILE` the restore must match")
	f.StringVar(&pgBin, "pg-bin", "", "directory of the PostgreSQL binaries (default: newest /usr/lib/postgresql/*/bin, then PATH)")
	f.StringVar(&workDir, "work-dir", "", "where the dump and the throwaway cluster go (default: $TMPDIR)")
	f.IntVar(&jobs, "jobs", 0, "parallel pg_restore jobs and checksum connections (0: one per CPU, up to 4)")
	f.StringArrayVar(&roles, "role", nil, "create this role (NOLOGIN) in the throwaway cluster before restoring (repeatable)")
	f.StringArrayVar(&schemas, "schema", nil, "compare only this schema (repeatable)")
	pf.register(cmd)
	rf.register(cmd)
	return cmd
}

// prefixWriter prints the engine's progress lines as side remarks on stderr.
type prefixWriter struct{ a *app }

func (w prefixWriter) Write(p []byte) (int, error) {
	for _, line := range strings.Split(strings.TrimRight(string(p), "\n"), "\n") {
		w.a.note("backupverify: %s", line)
	}
	return len(p), nil
}
