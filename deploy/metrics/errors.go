package metrics

import "errors"

// ErrCounterReset reports a router whose counters went backwards during an interval: it
// restarted, and the interval's numbers are meaningless.
var ErrCounterReset = errors.New("router counters went backwards (restarted?)")
