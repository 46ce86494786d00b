package source

import "errors"

// Errors callers test with errors.Is. Each is wrapped with the offending entry or digest.
var (
	// ErrUnsafeEntry: a bundle entry would escape the tree (.., absolute path, symlink or
	// hard link out) or is a kind of file a bundle must not carry (device, fifo).
	ErrUnsafeEntry = errors.New("unsafe bundle entry")
	// ErrTooLarge: a bundle, a file or the whole tree is above Limits.
	ErrTooLarge = errors.New("source bundle too large")
	// ErrDigestMismatch: the bytes downloaded do not hash to the digest asked for.
	ErrDigestMismatch = errors.New("source bundle digest mismatch")
	// ErrBadDigest: a digest string is not "sha256:" and 64 lowercase hex digits.
	ErrBadDigest = errors.New("malformed source digest")
)
