package lockfile

import "errors"

// ErrHeld: another process holds the lock.
var ErrHeld = errors.New("locked by another process")
