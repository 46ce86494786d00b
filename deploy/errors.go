package deploy

import "errors"

var (
	// ErrSpec reports a Rollout the engine cannot run.
	ErrSpec = errors.New("bad rollout spec")
	// ErrWeightMismatch reports a router that reads back another weight than was set.
	ErrWeightMismatch = errors.New("router reads back another weight than was set")
	// ErrUnhealthy reports a canary whose health check did not pass in time.
	ErrUnhealthy = errors.New("canary not healthy")
)
