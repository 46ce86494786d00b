package decide

import "errors"

// Sentinels of the decisions. The coordinator's run API answers them with their codes
// (ErrNotFound 404, ErrConflict 409), so callers match them with errors.Is.
var (
	// ErrNotFound: the input names what the run does not have (a stage), or the planner
	// has no such run.
	ErrNotFound = errors.New("not found")
	// ErrConflict: the input does not apply to the run as it is (approving a stage that
	// does not wait, cancelling a finished run), or another writer changed the run first.
	ErrConflict = errors.New("conflict")
	// ErrCorrupt: a stored state contradicts its own spec (a stage the spec lacks, a shard or
	// rollout step out of range); it cannot be decided on, and its inputs are dropped.
	ErrCorrupt = errors.New("run state is corrupt")
	// ErrNotYet: the input belongs to a later state of the run than the one decided on (a
	// read from a replica that lags); deciding it again on a fresher read applies it.
	ErrNotYet = errors.New("input is ahead of the state read")
)
