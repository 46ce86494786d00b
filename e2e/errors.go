package e2e

import "errors"

// ErrBadSelector is wrapped by CheckSelector's errors and by a step whose selector the
// browser refuses.
var ErrBadSelector = errors.New("bad CSS selector")

// ErrNoBrowser: no Chromium binary where the engine looked.
var ErrNoBrowser = errors.New("no Chromium browser")

// ErrBrowserCrashed is wrapped by the failure of a journey whose browser died under it.
var ErrBrowserCrashed = errors.New("browser crashed")

// ErrInvalid is wrapped by every problem of a journey file's content (see Error).
var ErrInvalid = errors.New("invalid journey")
