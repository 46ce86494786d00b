package governance

import "errors"

// ErrBadSeverity: a severity name that ParseSeverity does not know.
var ErrBadSeverity = errors.New("unknown severity")

// ErrUnknownPack: a pack name that is not one of AllPacks.
var ErrUnknownPack = errors.New("unknown rule pack")

// ErrBadBaseline: a baseline file that does not read or parse.
var ErrBadBaseline = errors.New("bad governance baseline")

// ErrBadRules: a rules file that does not read, parse or validate. The error is a
// *RuleError, or RuleErrors for several, each naming the file, line, column and field.
var ErrBadRules = errors.New("bad governance rules")
