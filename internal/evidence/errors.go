package evidence

import "errors"

// ErrInvalid is wrapped by every verification failure.
var ErrInvalid = errors.New("invalid evidence")
