package bus

import "errors"

// ErrBadConfig is wrapped by Validate errors.
var ErrBadConfig = errors.New("invalid bus config")

// ErrUnreachable means no NATS server answered at the URL tried. Callers (the CLI exits 3 on
// it) test for it with errors.Is.
var ErrUnreachable = errors.New("cannot reach NATS")
