package auth

import (
	"errors"
	"fmt"
)

// Errors of the package, matched with errors.Is.
var (
	// ErrExists: `auth init` would overwrite the keys of an existing fleet.
	ErrExists = errors.New("already exists")
	// ErrBadToken: an HTTP token that is malformed, or not signed by a role of the fleet.
	ErrBadToken = errors.New("invalid token")
	// ErrBadPolicy: a policy file that does not parse or names unknown roles.
	ErrBadPolicy = errors.New("invalid policy")
	// ErrUnknownRole: a role that is not one of Roles().
	ErrUnknownRole = errors.New("unknown role")
	// ErrBadName: a user, group or pool name that cannot be a subject token.
	ErrBadName = errors.New("invalid name")
)

// NameError is a name that cannot be a subject token.
type NameError struct {
	What, Name string
}

func (e *NameError) Error() string {
	return fmt.Sprintf("%s %q: use lowercase letters, digits, '-' and '_' (at most 64, starting with a letter or digit)", e.What, e.Name)
}

// Unwrap makes a NameError match ErrBadName.
func (e *NameError) Unwrap() error { return ErrBadName }
