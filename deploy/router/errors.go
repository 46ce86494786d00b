package router

import "errors"

var (
	// ErrWeight reports a canary weight outside 0-100.
	ErrWeight = errors.New("canary weight must be 0-100")
	// ErrConfigTest reports a configuration nginx refused; the previous file was restored.
	ErrConfigTest = errors.New("nginx rejected the configuration")
	// ErrServerNotFound reports a stable or canary server that is not in the upstream or backend.
	ErrServerNotFound = errors.New("server not found")
)
