package loadtest

import "errors"

// Errors of Run; each failed run wraps exactly one.
var (
	// ErrThresholds: k6 exited 99, one or more thresholds were crossed.
	ErrThresholds = errors.New("thresholds crossed")
	// ErrScript: the script does not exist, does not compile, or threw.
	ErrScript = errors.New("k6 script error")
	// ErrTargetUnreachable: the target URL refuses connections (checked before k6 starts).
	ErrTargetUnreachable = errors.New("target unreachable")
	// ErrBadOptions: the options cannot describe a k6 run.
	ErrBadOptions = errors.New("bad load test options")
	// ErrK6Failed: k6 failed for another reason (bad config, aborted, crashed).
	ErrK6Failed = errors.New("k6 failed")
	// ErrCanceled: the context ended the run.
	ErrCanceled = errors.New("load test canceled")
)

// ErrK6NotFound: no k6 binary at $SLUICE_K6, on PATH, or in the repository's bin/.
var ErrK6NotFound = errors.New("k6 not found")
