package bus

import (
	"fmt"
	"os"
	"os/user"
	"strings"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"

	sluicev1 "github.com/sluice-ci/sluice/proto/sluice/v1"
)

// AnonymousRole is the role of a connection without credentials. Its name is only claimed:
// a fleet without authentication cannot tell callers apart.
const AnonymousRole = "anonymous"

// RoleTag is the user JWT tag that names a user's role ("role:approver"). The server does not
// read it: a user's permissions come from the scoped signing key of its role, which writes the
// role literally into every subject the user may use. Clients read the tag to build those
// subjects.
const RoleTag = "role"

// PoolTag is the user JWT tag that names a pool a worker user serves ("pool:default"); the
// server lets a worker user pull only from its pools' consumers.
const PoolTag = "pool"

// Identity is who a connection is: the role and name of the user its credentials hold. The
// API and result subjects carry both, and the server's permissions let a user publish only
// under its own, so a receiver knows the sender.
type Identity struct {
	Role string // e.g. coordinator, worker-static, submitter; AnonymousRole without credentials
	Name string // the user's name within the role, e.g. default, alice, ci-3
	User string // the user's public nkey; empty without credentials
	// Pools a worker user may pull from (its JWT's pool tags).
	Pools []string
}

// Principal is "role:name", the form runs, events and policies record.
func (id Identity) Principal() string { return id.Role + ":" + id.Name }

// Anonymous reports whether the identity comes from no credentials.
func (id Identity) Anonymous() bool { return id.Role == AnonymousRole }

// InboxPrefix is where a user's replies arrive: _INBOX.<user nkey>. Each user may subscribe
// only below its own prefix, so no user reads another's replies (pulled tasks among them).
func InboxPrefix(user string) string { return "_INBOX." + user }

// ReadIdentity reads the identity of the user in a credentials file (JWT and seed, as
// `sluice auth init` writes them).
func ReadIdentity(credsFile string) (Identity, error) {
	data, err := os.ReadFile(credsFile)
	if err != nil {
		return Identity{}, fmt.Errorf("nats credentials: %w", err)
	}
	token, err := jwt.ParseDecoratedJWT(data)
	if err != nil {
		return Identity{}, fmt.Errorf("nats credentials %s: %w", credsFile, err)
	}
	id, err := identityFromJWT(token)
	if err != nil {
		return Identity{}, fmt.Errorf("nats credentials %s: %w", credsFile, err)
	}
	return id, nil
}

func identityFromJWT(token string) (Identity, error) {
	claims, err := jwt.DecodeUserClaims(token)
	if err != nil {
		return Identity{}, fmt.Errorf("not a user JWT: %w", err)
	}
	id := Identity{User: claims.Subject, Name: claims.Name}
	for _, tag := range claims.Tags {
		if v, ok := strings.CutPrefix(tag, RoleTag+":"); ok {
			id.Role = v
		}
		if v, ok := strings.CutPrefix(tag, PoolTag+":"); ok {
			id.Pools = append(id.Pools, v)
		}
	}
	if id.Role == "" || !IsToken(id.Role) || !IsToken(id.Name) {
		return Identity{}, fmt.Errorf("user %q has no Sluice role tag or an unusable name: mint it with `sluice auth add-user`", claims.Name)
	}
	return id, nil
}

// IdentityOf is the identity of a connection: its user's when it connected with credentials,
// else anonymous with the local user name.
func IdentityOf(nc *nats.Conn) Identity {
	if nc != nil && nc.Opts.UserJWT != nil {
		if token, err := nc.Opts.UserJWT(); err == nil {
			if id, err := identityFromJWT(token); err == nil {
				return id
			}
		}
	}
	return Identity{Role: AnonymousRole, Name: localName()}
}

// localName is the OS user as a subject token, the name an anonymous caller claims.
func localName() string {
	name := "unknown"
	if u, err := user.Current(); err == nil && u.Username != "" {
		name = u.Username
	}
	return Tokenize(name)
}

// Tokenize turns s into a subject token: lowercase letters, digits, '-' and '_', at most 64
// bytes; anything else becomes '-'.
func Tokenize(s string) string {
	b := []byte(strings.ToLower(s))
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			b[i] = '-'
		}
	}
	if len(b) > 64 {
		b = b[:64]
	}
	if len(b) == 0 {
		return "unknown"
	}
	return string(b)
}

// IsToken reports whether s is a lowercase subject token: [a-z0-9][a-z0-9_-]{0,63}. Roles,
// user names and pools are such tokens.
func IsToken(s string) bool { return sluicev1.IsName(s) }
