package backupverify

import "errors"

// ErrBadPolicy: a Policy out of range.
var ErrBadPolicy = errors.New("invalid policy")

var (
	// ErrBadInput: options that cannot work together, or a dump file that is not there.
	ErrBadInput = errors.New("bad input")
	// ErrUnsupportedDump: a plain-SQL dump, which pg_restore cannot read.
	ErrUnsupportedDump = errors.New("unsupported dump format")
	// ErrDump: pg_dump could not dump the source.
	ErrDump = errors.New("pg_dump failed")
	// ErrScratch: no scratch database could be made to restore into.
	ErrScratch = errors.New("cannot prepare the scratch database")
)

// Errors that stop a check before it can run; each message says what to do.
var (
	ErrBadDSN      = errors.New("invalid DSN")
	ErrUnreachable = errors.New("cannot reach PostgreSQL")
	ErrAuth        = errors.New("PostgreSQL authentication failed")
	ErrNoDatabase  = errors.New("database does not exist")
)

var (
	// ErrBadBaseline: a baseline file that is not one, or is malformed.
	ErrBadBaseline = errors.New("invalid baseline")
	// ErrBaselineVersion: a baseline written by a newer Sluice, in a format this one does
	// not know.
	ErrBaselineVersion = errors.New("baseline format version not supported")
)
