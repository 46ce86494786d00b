package strictyaml

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Error is one problem in a file. It prints on one line as "FILE:LINE:COL: FIELD: MSG",
// the form editors and CI annotations understand; LINE, COL and FIELD are left out when
// unknown (YAML syntax errors carry a line only, an unreadable file none).
type Error struct {
	File   string
	Line   int
	Column int
	// Field is the path of the offending field: "stages.test.timeout", "steps[2].click".
	Field string
	Msg   string
	// Kind is the sentinel of the file's format (e.g. contract.ErrInvalid), so that
	// errors.Is tells bad input of that format from other failures. It may be nil.
	Kind error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
		if e.Column > 0 {
			fmt.Fprintf(&b, ":%d", e.Column)
		}
	}
	b.WriteString(": ")
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Text is the problem without its file and position ("FIELD: MSG"), for reports that carry
// those apart, such as a finding.
func (e *Error) Text() string {
	if e.Field == "" {
		return e.Msg
	}
	return e.Field + ": " + e.Msg
}

// Unwrap returns the format's sentinel.
func (e *Error) Unwrap() error { return e.Kind }

// Errors is every problem found in one or more files, one per line.
type Errors []*Error

func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap lets errors.As find each *Error, and errors.Is their format's sentinel.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

// Err returns nil for no problems, the *Error for one, and for several the Errors sorted by
// file, line and column.
func (es Errors) Err() error {
	switch len(es) {
	case 0:
		return nil
	case 1:
		return es[0]
	}
	slices.SortStableFunc(es, func(a, b *Error) int {
		return cmp.Or(cmp.Compare(a.File, b.File), cmp.Compare(a.Line, b.Line), cmp.Compare(a.Column, b.Column))
	})
	return es
}

// List returns the problems in err one by one: the elements of an Errors, the *Error
// itself, or nil when err carries no position (e.g. a failure to run).
func List(err error) []*Error {
	var es Errors
	if errors.As(err, &es) {
		return es
	}
	var e *Error
	if errors.As(err, &e) {
		return []*Error{e}
	}
	return nil
}
