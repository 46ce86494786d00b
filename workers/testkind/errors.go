package testkind

import "errors"

// ErrBadSplit: the split stored for an attempt does not fit the task (another shard count).
var ErrBadSplit = errors.New("stored shard split does not match the task")
