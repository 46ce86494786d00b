package coordinator

import (
	"errors"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluice-ci/sluice/coordinator/decide"
)

// Errors of the run API. Replies carry them as micro service error codes, and the client
// turns the codes back into these sentinels (codeError), so callers match them with
// errors.Is on either side of the bus.
var (
	// ErrNotFound: no such run, or no such stage of it (404).
	ErrNotFound = decide.ErrNotFound
	// ErrConflict: the request does not apply to the run as it is (409).
	ErrConflict = decide.ErrConflict
	// ErrNotYet: an input arrived before the state it belongs to was readable; retried.
	ErrNotYet = decide.ErrNotYet
	// ErrBadRequest: the request itself is wrong, e.g. a spec that does not validate (400).
	ErrBadRequest = errors.New("bad request")
	// ErrForbidden: the caller's principal may not do what it asked (403).
	ErrForbidden = errors.New("forbidden")
	// ErrNoCoordinator: no coordinator answered the request.
	ErrNoCoordinator = errors.New("no coordinator is answering")
	// ErrUnstorable: a run's state cannot be stored or read back (too large, undecodable,
	// contradicting its spec); its inputs are dropped rather than retried, so it cannot
	// hold up other runs.
	ErrUnstorable = errors.New("run state unstorable")
)

// errWrongLastSequence is the compare-and-swap conflict a replicated bucket reports
// (jetstream.ErrKeyExists matches the single-replica code only).
var errWrongLastSequence = &jetstream.APIError{ErrorCode: jetstream.JSErrCodeStreamWrongLastSequenceConstant}
