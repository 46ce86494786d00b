package backupverify

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sluice-ci/sluice/backupverify/pgcluster"
)

const (
	// maxJobs caps the default parallelism: beyond it pg_restore gains little.
	maxJobs = 4
	// cleanupTimeout bounds dropping the scratch database, which happens even after a
	// cancel.
	cleanupTimeout = 30 * time.Second
	// stderrTail is how much of a tool's error output a message quotes.
	stderrTail = 1500
)

// RestoreOptions configure RestoreVerify. A dump (DumpFile, or a pg_dump of SourceDSN)
// and something to compare the restore with (Baseline and/or SourceDSN) are required.
type RestoreOptions struct {
	// Baseline the restored database must match under Policy; nil compares with the
	// source only. Tables with a Checksum must match it exactly.
	Baseline *Baseline
	Policy   Policy
	// SourceDSN is the database the dump is of. Without DumpFile it is dumped with
	// `pg_dump --format=custom`; when it is reachable the restore must hold exactly its
	// rows (counts and per-table content checksums).
	SourceDSN string
	// DumpFile is an existing dump: pg_dump's custom, directory or tar format.
	DumpFile string
	// ScratchDSN names a server to restore on, in a fresh database that is dropped
	// afterwards (its user needs CREATEDB). Empty: a throwaway cluster is started from
	// the machine's PostgreSQL binaries and removed afterwards.
	ScratchDSN string
	// Roles are created (NOLOGIN) in the throwaway cluster before the restore, for dumps
	// whose policies or grants name roles; the source's roles are created too when the
	// source is reachable.
	Roles []string
	// Schemas limits the comparison, as CaptureOptions.Schemas.
	Schemas []string
	// PGBin is the directory of the PostgreSQL binaries; default the newest
	// /usr/lib/postgresql/*/bin, then PATH.
	PGBin string
	// Jobs is pg_restore's --jobs and the number of checksum connections per database;
	// default the number of CPUs, at most 4.
	Jobs int
	// WorkDir is where the dump is taken and the throwaway cluster lives; default
	// os.TempDir(). When running as root, ClusterUser must be able to enter it.
	WorkDir string
	// ClusterUser is the OS user the throwaway cluster runs as when this process is root;
	// see pgcluster.Options.User.
	ClusterUser string
	// Log receives progress lines; nil discards them.
	Log io.Writer
}

// RestoreVerify proves a backup restores: it restores the dump with pg_restore into a
// scratch database and compares the result with the baseline (schema and the row
// policy) and, when the source is reachable, with the source (schema, exact row counts,
// per-table content checksums computed in SQL). The source's checksums are computed
// while pg_restore runs.
//
// A dump that cannot be read or restored is a failed report, not an error; errors mean
// the check could not run (bad options, unreachable source to dump, missing binaries).
func RestoreVerify(ctx context.Context, o RestoreOptions) (*Report, error) {
	started := time.Now()
	if err := o.check(); err != nil {
		return nil, err
	}
	tools := []string{"pg_restore"}
	if o.DumpFile == "" {
		tools = append(tools, "pg_dump")
	}
	if o.ScratchDSN == "" {
		tools = append(tools, pgcluster.ServerTools...)
	}
	bin, err := pgcluster.FindBin(o.PGBin, tools...)
	if err != nil {
		return nil, err
	}
	if o.Jobs <= 0 {
		o.Jobs = min(runtime.NumCPU(), maxJobs)
	}
	if o.WorkDir == "" {
		o.WorkDir = os.TempDir()
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	work, err := os.MkdirTemp(o.WorkDir, "sluice-restore-")
	if err != nil {
		return nil, fmt.Errorf("work directory: %w", err)
	}
	defer os.RemoveAll(work)

	rv := &restoreRun{o: o, bin: bin, work: work, r: newReport(CheckRestoreVerify, o.Baseline, o.Policy)}
	rv.r.Restore = &RestoreInfo{}
	if err := rv.run(ctx); err != nil {
		return nil, err
	}
	rv.r.Restore.TotalSeconds = seconds(time.Since(started))
	ri := rv.r.Restore
	ri.VerifySeconds = max(0, ri.TotalSeconds-ri.DumpSeconds-ri.ScratchSeconds-ri.RestoreSeconds)
	rv.r.finish()
	return rv.r, nil
}

func (o *RestoreOptions) check() error {
	switch {
	case o.DumpFile == "" && o.SourceDSN == "":
		return fmt.Errorf("%w: no dump: give a dump file, or the source DSN to dump", ErrBadInput)
	case o.Baseline == nil && o.SourceDSN == "":
		return fmt.Errorf("%w: nothing to compare the restore with: give a baseline, or the source DSN", ErrBadInput)
	}
	if o.DumpFile != "" {
		if _, err := os.Stat(o.DumpFile); err != nil {
			return fmt.Errorf("%w: dump %v", ErrBadInput, err)
		}
	}
	for _, dsn := range []string{o.SourceDSN, o.ScratchDSN} {
		if dsn == "" {
			continue
		}
		if _, err := parseDSN(dsn); err != nil {
			return err
		}
		if _, err := parseConnString(dsn); err != nil {
			return err
		}
	}
	return o.Policy.Validate()
}

// restoreRun is one RestoreVerify in progress.
type restoreRun struct {
	o    RestoreOptions
	bin  pgcluster.Bin
	work string
	r    *Report

	dump   string // the archive restored
	source bool   // the source is reachable and compared with
	// hashOK: checksum with methodHash, which the source, the scratch server and the
	// baseline's checksums all support; otherwise every side uses methodText.
	hashOK bool
}

func (rv *restoreRun) logf(format string, args ...any) {
	fmt.Fprintf(rv.o.Log, format+"\n", args...)
}

func (rv *restoreRun) add(f Finding) { rv.r.Findings = append(rv.r.Findings, f) }

func (rv *restoreRun) run(ctx context.Context) error {
	ri := rv.r.Restore
	rv.hashOK = true
	if b := rv.o.Baseline; b != nil {
		for _, t := range b.Tables {
			if strings.HasPrefix(t.Checksum, methodText) {
				rv.hashOK = false
			}
		}
	}
	if rv.o.SourceDSN != "" {
		if hashOK, err := probe(ctx, rv.o.SourceDSN); err != nil {
			if rv.o.DumpFile == "" {
				return err
			}
			rv.add(Finding{Rule: RuleSourceUnreachable, Severity: SeverityInfo, Against: AgainstSource,
				Message: fmt.Sprintf("source not compared: %v; the restore is compared with the baseline only", err)})
		} else {
			rv.source, rv.hashOK = true, rv.hashOK && hashOK
			ri.Source = DescribeDSN(rv.o.SourceDSN)
		}
	}
	if err := rv.takeDump(ctx); err != nil {
		return err
	}
	rv.r.Database = "restore of " + ri.Dump
	encoding, ok, err := rv.readArchive(ctx)
	if err != nil || !ok {
		return err
	}

	t0 := time.Now()
	target, cleanup, err := rv.scratch(ctx, encoding)
	if err != nil {
		return err
	}
	defer cleanup()
	ri.ScratchSeconds = seconds(time.Since(t0))

	// The source is read while pg_restore writes: on separate servers (or databases)
	// they overlap instead of adding up.
	srcCtx, cancelSrc := context.WithCancel(ctx)
	srcDone := make(chan struct{})
	var src *Baseline
	var srcErr error
	if rv.source {
		go func() {
			defer close(srcDone)
			src, srcErr = captureWithSums(srcCtx, rv.o.SourceDSN, rv.o.Schemas, rv.o.Jobs, rv.hashOK)
		}()
	} else {
		close(srcDone)
	}
	// Every return below waits for the source goroutine, which the cancel ends early.
	defer func() { cancelSrc(); <-srcDone }()

	if ok, err := rv.restore(ctx, target); err != nil || !ok {
		return err
	}
	t0 = time.Now()
	restored, err := captureWithSums(ctx, target, rv.o.Schemas, rv.o.Jobs, rv.hashOK)
	if err != nil {
		return fmt.Errorf("read the restored database: %w", err)
	}
	<-srcDone
	if srcErr != nil {
		return fmt.Errorf("read the source for comparison: %w", srcErr)
	}
	rv.logf("checked the restored database in %.1fs", time.Since(t0).Seconds())
	rv.compare(restored, src)
	return nil
}

// probe connects once, to tell an unreachable source before anything is started, and
// whether it can checksum with methodHash.
func probe(ctx context.Context, dsn string) (hashOK bool, err error) {
	conn, err := connect(ctx, dsn, true)
	if err != nil {
		return false, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	return hashSupported(ctx, conn)
}

// takeDump dumps the source unless a dump file was given.
func (rv *restoreRun) takeDump(ctx context.Context) error {
	ri := rv.r.Restore
	if rv.o.DumpFile != "" {
		// The tools run in the work directory.
		abs, err := filepath.Abs(rv.o.DumpFile)
		if err != nil {
			return fmt.Errorf("%w: dump %v", ErrBadInput, err)
		}
		rv.dump, ri.Dump = abs, rv.o.DumpFile
		ri.DumpBytes = pathSize(rv.dump)
		return nil
	}
	rv.dump = filepath.Join(rv.work, "source.dump")
	conninfo, env, err := toolConn(rv.o.SourceDSN)
	if err != nil {
		return err
	}
	ri.Dump = "pg_dump --format=custom of " + DescribeDSN(rv.o.SourceDSN)
	rv.logf("dumping %s with %s", DescribeDSN(rv.o.SourceDSN), rv.bin.Path("pg_dump"))
	t0 := time.Now()
	out, err := rv.tool(ctx, "pg_dump", env, "--format=custom", "--no-sync", "--file="+rv.dump, "--dbname="+conninfo)
	if err != nil {
		msg := toolError(err, out)
		if strings.Contains(msg, "server version mismatch") {
			msg += " (pg_dump must be at least as new as the server: install newer PostgreSQL client binaries, or pass --pg-bin)"
		}
		return fmt.Errorf("%w: dump %s: %s", ErrDump, DescribeDSN(rv.o.SourceDSN), msg)
	}
	ri.DumpSeconds = seconds(time.Since(t0))
	ri.DumpBytes = pathSize(rv.dump)
	rv.logf("dumped %s in %.1fs", byteSize(ri.DumpBytes), ri.DumpSeconds)
	return nil
}

var clientEncoding = regexp.MustCompile(`(?m)^SET client_encoding = '([^']+)';`)

// readArchive checks that pg_restore can read the dump's table of contents, and finds
// the database encoding to restore into (so that text, and the checksums of it, are
// stored as in the source). ok is false when the dump is unreadable: a failed report.
func (rv *restoreRun) readArchive(ctx context.Context) (encoding string, ok bool, err error) {
	out, err := rv.tool(ctx, "pg_restore", nil, "--list", rv.dump)
	if err != nil {
		if ctx.Err() != nil {
			return "", false, context.Cause(ctx)
		}
		msg := toolError(err, out)
		if strings.Contains(msg, "text format dump") {
			return "", false, fmt.Errorf("%w: %s is a plain-SQL dump, which pg_restore cannot read; "+
				"take the backup with pg_dump --format=custom (or directory or tar)", ErrUnsupportedDump, rv.r.Restore.Dump)
		}
		h := hint(msg)
		if h == "" {
			h = " (the dump is truncated or corrupt, or not a pg_dump archive)"
		}
		rv.add(Finding{Rule: RuleDumpUnreadable, Severity: SeverityCritical, Against: AgainstDump,
			Message: "the dump cannot be read: " + msg + h})
		return "", false, nil
	}
	if strings.Contains(string(out), "Format: TAR") {
		// pg_restore restores tar archives serially only.
		rv.o.Jobs = 1
	}
	empty := filepath.Join(rv.work, "empty.list")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		return "", false, fmt.Errorf("work directory: %w", err)
	}
	// With an empty list, pg_restore prints only the session setup, encoding included.
	out, err = rv.tool(ctx, "pg_restore", nil, "--file=-", "--use-list="+empty, rv.dump)
	if m := clientEncoding.FindSubmatch(out); err == nil && m != nil {
		return string(m[1]), true, nil
	}
	return "UTF8", true, nil
}

// scratch creates the database to restore into and returns its DSN and how to remove it.
func (rv *restoreRun) scratch(ctx context.Context, encoding string) (dsn string, cleanup func(), err error) {
	name := "sluice_verify_" + randomHex(4)
	admin := rv.o.ScratchDSN
	var cluster *pgcluster.Cluster
	if admin == "" {
		rv.logf("starting a throwaway PostgreSQL cluster from %s", rv.bin.Dir)
		cluster, err = pgcluster.Start(ctx, pgcluster.Options{Bin: rv.bin, Parent: rv.o.WorkDir, User: rv.o.ClusterUser})
		if err != nil {
			return "", nil, err
		}
		admin = cluster.DSN("postgres")
		rv.r.Restore.Target = fmt.Sprintf("database %s in a throwaway cluster on 127.0.0.1:%d (removed afterwards)", name, cluster.Port)
	} else {
		rv.r.Restore.Target = fmt.Sprintf("database %s on %s (dropped afterwards)", name, DescribeDSN(admin))
	}
	closeCluster := func() {
		if cluster != nil {
			if err := cluster.Close(); err != nil {
				rv.logf("warning: %v", err)
			}
		}
	}
	if err := rv.createDatabase(ctx, admin, name, encoding, cluster != nil); err != nil {
		closeCluster()
		return "", nil, err
	}
	dsn, err = withDatabase(admin, name)
	if err != nil {
		closeCluster()
		return "", nil, err
	}
	return dsn, func() {
		if cluster == nil {
			rv.dropDatabase(ctx, admin, name)
		}
		closeCluster()
	}, nil
}

func (rv *restoreRun) createDatabase(ctx context.Context, admin, name, encoding string, throwaway bool) error {
	conn, err := connect(ctx, admin, false)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrScratch, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	hashOK, err := hashSupported(ctx, conn)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrScratch, err)
	}
	rv.hashOK = rv.hashOK && hashOK
	q := fmt.Sprintf("CREATE DATABASE %s TEMPLATE template0 ENCODING %s LOCALE 'C'",
		pgx.Identifier{name}.Sanitize(), quoteLiteral(encoding))
	if _, err := conn.Exec(ctx, q); err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "42501" {
			return fmt.Errorf("%w: %s may not create databases: grant it CREATEDB, or leave the scratch DSN out "+
				"to restore into a throwaway cluster", ErrScratch, DescribeDSN(admin))
		}
		return fmt.Errorf("%w: create database %s on %s: %w", ErrScratch, name, DescribeDSN(admin), err)
	}
	if !throwaway {
		return nil
	}
	roles := append([]string(nil), rv.o.Roles...)
	if rv.source {
		src, err := sourceRoles(ctx, rv.o.SourceDSN)
		if err != nil {
			return err
		}
		roles = append(roles, src...)
	}
	for _, role := range roles {
		var exists bool
		if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)", role).Scan(&exists); err != nil {
			return fmt.Errorf("%w: role %s: %w", ErrScratch, role, err)
		}
		if !exists {
			if _, err := conn.Exec(ctx, "CREATE ROLE "+pgx.Identifier{role}.Sanitize()+" NOLOGIN"); err != nil {
				return fmt.Errorf("%w: create role %s: %w", ErrScratch, role, err)
			}
		}
	}
	return nil
}

// sourceRoles lists the source cluster's own roles, which policies and grants may name.
func sourceRoles(ctx context.Context, dsn string) ([]string, error) {
	conn, err := connect(ctx, dsn, true)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	rows, err := conn.Query(ctx, "SELECT rolname::text FROM pg_roles WHERE rolname !~ '^pg_' ORDER BY 1")
	if err != nil {
		return nil, fmt.Errorf("list the source's roles: %w", err)
	}
	roles, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("list the source's roles: %w", err)
	}
	return roles, nil
}

// dropDatabase removes the scratch database, even when ctx was cancelled.
func (rv *restoreRun) dropDatabase(ctx context.Context, admin, name string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	conn, err := connect(ctx, admin, false)
	if err == nil {
		_, err = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
		conn.Close(ctx)
	}
	if err != nil {
		rv.logf("warning: could not drop the scratch database %s on %s: %v", name, DescribeDSN(admin), err)
	}
}

// restore runs pg_restore. ok is false when the dump does not restore: a failed report.
func (rv *restoreRun) restore(ctx context.Context, target string) (bool, error) {
	conninfo, env, err := toolConn(target)
	if err != nil {
		return false, err
	}
	rv.logf("restoring %s with pg_restore --jobs=%d into %s", rv.r.Restore.Dump, rv.o.Jobs, rv.r.Restore.Target)
	t0 := time.Now()
	out, err := rv.tool(ctx, "pg_restore", env, "--no-owner", "--no-privileges", "--no-tablespaces",
		"--no-subscriptions", "--no-security-labels", "--exit-on-error", fmt.Sprintf("--jobs=%d", rv.o.Jobs),
		"--dbname="+conninfo, rv.dump)
	rv.r.Restore.RestoreSeconds = seconds(time.Since(t0))
	if err != nil {
		if ctx.Err() != nil {
			return false, context.Cause(ctx)
		}
		msg := toolError(err, out)
		rv.add(Finding{Rule: RuleRestoreFailed, Severity: SeverityCritical, Against: AgainstDump,
			Message: "the dump does not restore: " + msg + hint(msg)})
		return false, nil
	}
	rv.logf("restored in %.1fs", rv.r.Restore.RestoreSeconds)
	return true, nil
}

// captureWithSums captures dsn's schema, then counts and checksums every table over jobs
// connections.
func captureWithSums(ctx context.Context, dsn string, schemas []string, jobs int, hashOK bool) (*Baseline, error) {
	b, err := captureSchema(ctx, dsn, schemas)
	if err != nil {
		return nil, err
	}
	sums, err := checksumAll(ctx, dsn, true, b.Tables, jobs, hashOK)
	if err != nil {
		return nil, err
	}
	for i := range b.Tables {
		s := sums[b.Tables[i].QualifiedName()]
		b.Tables[i].Rows, b.Tables[i].Checksum = s.Rows, s.Checksum
	}
	return b, nil
}

// checksumMethod is the method part of a checksum, "h1" or "v1".
func checksumMethod(sum string) string {
	m, _, _ := strings.Cut(sum, ":")
	return m
}

// captureSchema captures dsn without counting rows.
func captureSchema(ctx context.Context, dsn string, schemas []string) (*Baseline, error) {
	conn, err := connect(ctx, dsn, true)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	return capture(ctx, tx, CaptureOptions{Schemas: schemas}, rowsNone)
}

// compare adds the findings of the restored database against the baseline and the source.
func (rv *restoreRun) compare(restored, src *Baseline) {
	if base := rv.o.Baseline; base != nil {
		rv.r.Findings = append(rv.r.Findings, diffSchemas(base, restored, AgainstBaseline)...)
		rv.r.Findings = append(rv.r.Findings, checkRows(base, restored, rv.o.Policy)...)
		for i := range base.Tables {
			b := &base.Tables[i]
			got := restored.Table(b.QualifiedName())
			switch {
			case b.Checksum == "" || got == nil || got.Checksum == b.Checksum:
			case checksumMethod(got.Checksum) != checksumMethod(b.Checksum):
				rv.add(Finding{Rule: RuleChecksumDiffers, Severity: SeverityInfo, Table: b.QualifiedName(), Against: AgainstBaseline,
					Expected: b.Checksum, Actual: got.Checksum,
					Message: fmt.Sprintf("table %s: content not compared with the baseline's checksum, which another method computed "+
						"(a server before PostgreSQL 14 on one side)", b.QualifiedName())})
			default:
				rv.add(Finding{Rule: RuleChecksumDiffers, Severity: SeverityHigh, Table: b.QualifiedName(), Against: AgainstBaseline,
					Expected: b.Checksum, Actual: got.Checksum,
					Message: fmt.Sprintf("table %s: restored content differs from the baseline's checksum (%d rows restored, %d in the baseline)",
						b.QualifiedName(), got.Rows, b.Rows)})
			}
		}
	}
	if src != nil {
		rv.r.Findings = append(rv.r.Findings, diffSchemas(src, restored, AgainstSource)...)
		for i := range src.Tables {
			s := &src.Tables[i]
			name := s.QualifiedName()
			got := restored.Table(name)
			switch {
			case got == nil:
			case got.Rows != s.Rows:
				rv.add(Finding{Rule: RuleRowsDiffer, Severity: SeverityHigh, Table: name, Against: AgainstSource,
					Expected: fmt.Sprint(s.Rows), Actual: fmt.Sprint(got.Rows),
					Message: fmt.Sprintf("table %s: the restore has %d rows, the source %d", name, got.Rows, s.Rows)})
			case got.Checksum != s.Checksum:
				rv.add(Finding{Rule: RuleChecksumDiffers, Severity: SeverityHigh, Table: name, Against: AgainstSource,
					Expected: s.Checksum, Actual: got.Checksum,
					Message: fmt.Sprintf("table %s: restored content differs from the source (same %d rows, different checksum)", name, s.Rows)})
			}
		}
	}
	rv.r.Tables = tableResults(rv.o.Baseline, restored)
	for i := range rv.r.Tables {
		t := &rv.r.Tables[i]
		if src == nil {
			continue
		}
		if s := src.Table(t.Table); s != nil {
			t.SourceRows, t.SourceChecksum = ptr(s.Rows), s.Checksum
		}
	}
	if src != nil {
		for i := range src.Tables {
			s := &src.Tables[i]
			if restored.Table(s.QualifiedName()) == nil && (rv.o.Baseline == nil || rv.o.Baseline.Table(s.QualifiedName()) == nil) {
				rv.r.Tables = append(rv.r.Tables, TableResult{Table: s.QualifiedName(), SourceRows: ptr(s.Rows), SourceChecksum: s.Checksum})
			}
		}
	}
}

// tool runs a PostgreSQL client tool and returns its combined output.
func (rv *restoreRun) tool(ctx context.Context, name string, env []string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, rv.bin.Path(name), args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Dir = rv.work
	cmd.WaitDelay = 5 * time.Second
	return cmd.CombinedOutput()
}

// toolError is the tail of a tool's output, or its exit error when it printed nothing.
func toolError(err error, out []byte) string {
	s := strings.TrimSpace(string(out))
	if s == "" {
		return err.Error()
	}
	if len(s) > stderrTail {
		s = "..." + s[len(s)-stderrTail:]
	}
	return strings.Join(strings.Fields(s), " ")
}

var roleMissing = regexp.MustCompile(`role "([^"]+)" does not exist`)

// hint says what a pg_restore error usually means.
func hint(msg string) string {
	switch {
	case roleMissing.MatchString(msg):
		return fmt.Sprintf(" (the dump names role %s: create it on the scratch server, or pass it as a role to create)",
			roleMissing.FindStringSubmatch(msg)[1])
	case strings.Contains(msg, "unsupported version"):
		return " (the dump comes from a newer pg_dump: use newer PostgreSQL binaries, --pg-bin)"
	}
	for _, s := range []string{"end of file", "too short", "could not read", "magic string", "not appear to be a valid archive",
		"could not uncompress", "corrupt", "unexpected", "invalid"} {
		if strings.Contains(msg, s) {
			return " (the dump is truncated or corrupt)"
		}
	}
	return ""
}

func pathSize(p string) int64 {
	var n int64
	_ = filepath.WalkDir(p, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

func seconds(d time.Duration) float64 { return float64(d.Milliseconds()) / 1000 }

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on supported platforms
	return hex.EncodeToString(b)
}

func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
