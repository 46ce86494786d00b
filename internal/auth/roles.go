// Package auth is Sluice's trust model: the roles of a fleet, the subject permissions the
// NATS server enforces for each, the credentials that carry them, HTTP tokens for the same
// principals, and the policy of who may submit which refs and approve which stages.
//
// A fleet runs NATS in operator (JWT) mode. `sluice auth init` creates an operator, a system
// account and the SLUICE account (JetStream) with one scoped signing key per role. A scoped
// key carries its role's permissions as a template, so every user it signs gets exactly those
// permissions and no others: a leaked user key cannot be re-signed into a wider role, and a
// new user (a machine, a person) is minted offline with `sluice auth add-user` without
// touching the server's configuration. The templates write the user's role and name into the
// subjects it may publish on (the run API, results), so a receiver knows who sent a message,
// and give each user an inbox nobody else may read.
package auth

import (
	"slices"
	"strings"

	"github.com/sluice-ci/sluice/internal/bus"
	sluicev1 "github.com/sluice-ci/sluice/proto/sluice/v1"
)

// Role names a set of permissions. Users of a role are its principals ("role:name").
type Role string

// The roles besides one worker role per kind (WorkerRole).
const (
	RoleCoordinator Role = "coordinator"
	RoleSubmitter   Role = "submitter"
	RoleApprover    Role = "approver"
	RoleObserver    Role = "observer"
	RoleAdmin       Role = "admin"
)

// workerPrefix starts the role of the workers of one kind: worker-static, worker-test, ...
const workerPrefix = "worker-"

// WorkerRole is the role of the workers of kind.
func WorkerRole(kind sluicev1.StageKind) Role { return Role(workerPrefix + kind.Slug()) }

// Roles lists every role: the coordinator, one worker role per kind, then the people and
// systems that use a fleet.
func Roles() []Role {
	roles := []Role{RoleCoordinator}
	for _, k := range sluicev1.AllKinds() {
		roles = append(roles, WorkerRole(k))
	}
	return append(roles, RoleSubmitter, RoleApprover, RoleObserver, RoleAdmin)
}

// ParseRole returns the role named s.
func ParseRole(s string) (Role, bool) {
	r := Role(s)
	return r, slices.Contains(Roles(), r)
}

// Kind is the stage kind of a worker role.
func (r Role) Kind() (sluicev1.StageKind, bool) {
	slug, ok := strings.CutPrefix(string(r), workerPrefix)
	if !ok {
		return 0, false
	}
	k, err := sluicev1.ParseStageKind(slug)
	return k, err == nil
}

// Verb is one call of the run API.
type Verb string

// The run API's verbs.
const (
	VerbSubmit   Verb = "submit"
	VerbGet      Verb = "get"
	VerbList     Verb = "list"
	VerbCancel   Verb = "cancel"
	VerbApprove  Verb = "approve"
	VerbRollback Verb = "rollback"
	// VerbRollout acts on a rollout in progress: promote, pause, resume, abort.
	VerbRollout Verb = "rollout"
	// VerbRetry runs a failed stage of a finished run again.
	VerbRetry Verb = "retry"
)

// Verbs lists the run API's verbs.
func Verbs() []Verb {
	return []Verb{VerbSubmit, VerbGet, VerbList, VerbCancel, VerbApprove, VerbRollback, VerbRollout, VerbRetry}
}

// verbs is which role may call which verb, on NATS and on HTTP alike. Workers and the
// coordinator call none.
var verbs = map[Role][]Verb{
	RoleSubmitter: {VerbSubmit, VerbGet, VerbList, VerbRetry},
	RoleApprover:  {VerbGet, VerbList, VerbCancel, VerbApprove, VerbRollback, VerbRollout, VerbRetry},
	RoleObserver:  {VerbGet, VerbList},
	RoleAdmin:     Verbs(),
}

// Allows reports whether r may call v.
func (r Role) Allows(v Verb) bool { return slices.Contains(verbs[r], v) }

// RolesAllowed lists the roles that may call v, for error messages.
func RolesAllowed(v Verb) []string {
	var out []string
	for _, r := range Roles() {
		if r.Allows(v) {
			out = append(out, string(r))
		}
	}
	return out
}

// Principal is "role:name".
func Principal(r Role, name string) string { return string(r) + ":" + name }

// checkName rejects names that cannot be subject tokens.
func checkName(what, s string) error {
	if !bus.IsToken(s) {
		return &NameError{What: what, Name: s}
	}
	return nil
}
