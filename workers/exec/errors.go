package exec

import "errors"

// ErrNoSandbox: this process cannot start sandboxed steps.
var ErrNoSandbox = errors.New("cannot isolate steps")

var (
	// ErrFailed: the step exited non-zero or was killed by a signal it did not get from us.
	ErrFailed = errors.New("step failed")
	// ErrTimeout: the step's timeout or the task's deadline passed; its process group was killed.
	ErrTimeout = errors.New("step timed out")
	// ErrCanceled: the context was cancelled; the step's process group was killed.
	ErrCanceled = errors.New("step cancelled")
)

var (
	// ErrMissingSecret: a stage names a secret the worker's environment does not hold.
	ErrMissingSecret = errors.New("missing secret")
	// ErrBadEnv: a variable name or value cannot be put in a process environment.
	ErrBadEnv = errors.New("bad environment variable")
)
