package workers

import "errors"

// ErrBadConfig is wrapped by New's validation errors.
var ErrBadConfig = errors.New("invalid worker config")

// ErrBadArtifactName: an artifact name is empty, absolute or climbs out with "..".
var ErrBadArtifactName = errors.New("bad artifact name")

// ErrSecretDenied: a stage asked for a secret the worker does not grant it.
var ErrSecretDenied = errors.New("secret not granted")
