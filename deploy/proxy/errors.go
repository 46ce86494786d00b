package proxy

import "errors"

// ErrWeight reports a canary weight outside 0-100.
var ErrWeight = errors.New("canary weight must be 0-100")
