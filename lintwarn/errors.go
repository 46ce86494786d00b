package lintwarn

import "errors"

var (
	// ErrUnknownFormat: a format name that is not one of Formats().
	ErrUnknownFormat = errors.New("unknown warnings format")
	// ErrBadPattern: a user pattern that does not compile or lacks the message group.
	ErrBadPattern = errors.New("invalid warnings pattern")
)
