package spec

import "github.com/sluice-ci/sluice/internal/strictyaml"

// Error is one problem in a pipeline file. It prints on one line as
// "FILE:LINE:COL: FIELD: MSG", the form editors and CI annotations understand; it is the
// error type of every Sluice file format (internal/strictyaml).
type Error = strictyaml.Error

// Errors is every problem found in one file, sorted by position, one per line.
type Errors = strictyaml.Errors

// List returns the problems in err one by one: the elements of an Errors, the *Error itself,
// or nil when err carries no position (e.g. the file could not be read).
func List(err error) []*Error { return strictyaml.List(err) }
