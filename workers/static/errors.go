package static

import "errors"

// ErrOutsideTree: a path in a governance block that leaves the source tree.
var ErrOutsideTree = errors.New("path outside the source tree")
