package contract

import "errors"

// ErrInvalid is wrapped by every error about a contract file's content.
var ErrInvalid = errors.New("invalid contract")
