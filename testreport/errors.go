package testreport

import "errors"

// ErrBadTimings: a timings file that is not a JSON object of non-negative seconds.
var ErrBadTimings = errors.New(`bad timings: want {"UNIT": SECONDS, ...}`)

// ErrOutsideDir: a JUnit glob that reaches outside the directory it is relative to.
var ErrOutsideDir = errors.New("outside the tree")

// ErrNoEvents: a stream holds no `go test -json` event.
var ErrNoEvents = errors.New("no `go test -json` events")
