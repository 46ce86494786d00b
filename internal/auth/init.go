package auth

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"

	"github.com/sluice-ci/sluice/internal/bus"
)

// DefaultUser is the name of the user `auth init` mints for every role.
const DefaultUser = "default"

// DefaultPool is the pool the default worker users serve.
const DefaultPool = "default"

// Layout names the files of an auth directory.
type Layout struct{ Dir string }

// Config is the complete configuration of one nats-server (listen, JetStream, auth).
func (l Layout) Config() string { return filepath.Join(l.Dir, "nats-server.conf") }

// AuthConfig is the part of the server configuration a cluster's node configs include.
func (l Layout) AuthConfig() string { return filepath.Join(l.Dir, "auth.conf") }

// Creds is the credentials file of a user: creds/<role>.creds for the default user,
// creds/<role>-<name>.creds for the others.
func (l Layout) Creds(r Role, name string) string {
	return filepath.Join(l.Dir, "creds", userFile(r, name)+".creds")
}

// Token is the HTTP bearer token file of a user, named like its credentials.
func (l Layout) Token(r Role, name string) string {
	return filepath.Join(l.Dir, "tokens", userFile(r, name)+".token")
}

// Trust is the public trust file coordinators and verifiers read.
func (l Layout) Trust() string { return filepath.Join(l.Dir, "trust.json") }

// Policy is the editable policy: protected refs and approval groups.
func (l Layout) Policy() string { return filepath.Join(l.Dir, "policy.yaml") }

// EvidencePub is the public key `sluice evidence verify --key` takes.
func (l Layout) EvidencePub() string { return filepath.Join(l.Dir, "evidence.pub") }

// EvidenceKey is the coordinators' private key for signing evidence and gate events.
func (l Layout) EvidenceKey() string { return filepath.Join(l.Dir, "coordinator", "evidence.key") }

// keys holds the issuing keys (operator, accounts, role signing keys): keep it offline once
// the users a fleet needs are minted.
func (l Layout) keys(parts ...string) string {
	return filepath.Join(append([]string{l.Dir, "keys"}, parts...)...)
}

func userFile(r Role, name string) string {
	if name == DefaultUser {
		return string(r)
	}
	return string(r) + "-" + name
}

// InitOptions configure Init.
type InitOptions struct {
	Names bus.Names
	// Pools the default worker users may pull from; default [DefaultPool].
	Pools []string
	// Listen and StoreDir are written into nats-server.conf; defaults 127.0.0.1:4222 and
	// <dir>/jetstream.
	Listen, StoreDir string
	// Cluster names the hosts of a NATS cluster: Init writes cluster/<host>.conf for each, a
	// node that listens on 4222 (clients), 6222 (routes to every other host) and 8222
	// (monitoring), with its store in ClusterStoreDir (default /data/jetstream).
	Cluster         []string
	ClusterStoreDir string
	// SyncAlways makes every server written fsync each JetStream write before acknowledging
	// it (sync_interval: always) instead of every two minutes: no acknowledged write is lost
	// when a node loses power, at a cost in write latency (see DESIGN.md).
	SyncAlways bool
}

// Init creates the auth directory of a new fleet: keys, a server configuration, a user with
// credentials and an HTTP token for every role, the trust file, a policy to edit and the
// evidence key pair. It refuses a directory that already holds keys (ErrExists): those keys
// sign the credentials a fleet runs on.
func Init(dir string, o InitOptions) (*Summary, error) {
	if o.Names.Prefix == "" {
		o.Names = bus.NewNames("")
	}
	if len(o.Pools) == 0 {
		o.Pools = []string{DefaultPool}
	}
	for _, p := range o.Pools {
		if err := checkName("pool", p); err != nil {
			return nil, err
		}
	}
	for _, h := range o.Cluster {
		if !hostName.MatchString(h) {
			return nil, fmt.Errorf("%w: cluster host %q: a DNS name of letters, digits, '-' and '.'", ErrBadName, h)
		}
	}
	l := Layout{Dir: dir}
	if _, err := os.Stat(l.keys()); err == nil {
		return nil, fmt.Errorf("%w: %s holds the keys of a fleet; mint more users with `sluice auth add-user`, or choose another --out", ErrExists, l.keys())
	}
	for _, d := range []string{dir, l.keys("roles"), filepath.Join(dir, "creds"), filepath.Join(dir, "tokens"), filepath.Join(dir, "coordinator")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("auth init: %w", err)
		}
	}
	operator, err := newKey(nkeys.CreateOperator, l.keys("operator.nk"))
	if err != nil {
		return nil, err
	}
	system, err := newKey(nkeys.CreateAccount, l.keys("system.nk"))
	if err != nil {
		return nil, err
	}
	account, err := newKey(nkeys.CreateAccount, l.keys("account.nk"))
	if err != nil {
		return nil, err
	}
	trust := Trust{Version: 1, Prefix: o.Names.Prefix, Roles: map[string]string{}}
	trust.Operator, _ = operator.PublicKey()
	trust.Account, _ = account.PublicKey()
	roleKeys := map[Role]nkeys.KeyPair{}
	for _, r := range Roles() {
		kp, err := newKey(nkeys.CreateAccount, l.keys("roles", string(r)+".nk"))
		if err != nil {
			return nil, err
		}
		roleKeys[r] = kp
		trust.Roles[string(r)], _ = kp.PublicKey()
	}
	conf, err := serverAuthConfig(operator, system, account, roleKeys, o.Names)
	if err != nil {
		return nil, err
	}
	if err := writeFile(l.AuthConfig(), []byte(conf), 0o600); err != nil {
		return nil, err
	}
	if err := writeFile(l.Config(), []byte(serverConfig(l, o)), 0o600); err != nil {
		return nil, err
	}
	if err := writeClusterConfigs(l, o); err != nil {
		return nil, err
	}
	pub, err := newEvidenceKey(l)
	if err != nil {
		return nil, err
	}
	trust.EvidenceKey = pub
	if err := writeJSON(l.Trust(), trust); err != nil {
		return nil, err
	}
	if err := writeFile(l.Policy(), []byte(defaultPolicy), 0o644); err != nil {
		return nil, err
	}
	sum := &Summary{Dir: dir}
	for _, r := range Roles() {
		var pools []string
		if _, ok := r.Kind(); ok {
			pools = o.Pools
		}
		u, err := mintUser(l, roleKeys[r], trust.Account, r, DefaultUser, pools)
		if err != nil {
			return nil, err
		}
		sum.Users = append(sum.Users, u)
	}
	return sum, nil
}

// Summary is what Init or AddUser wrote.
type Summary struct {
	Dir   string
	Users []User
}

// User is one minted user.
type User struct {
	Role             Role
	Name             string
	Pools            []string
	Creds, TokenFile string
}

// AddUser mints another user of role r in an auth directory made by Init: its credentials
// and HTTP token. Worker users name the pools they may pull from. The server needs no change:
// the role's signing key, which the account trusts, signs the user.
func AddUser(dir string, r Role, name string, pools []string) (User, error) {
	if _, ok := ParseRole(string(r)); !ok {
		return User{}, fmt.Errorf("%w %q: use one of %s", ErrUnknownRole, r, roleList())
	}
	if err := checkName("user name", name); err != nil {
		return User{}, err
	}
	if _, isWorker := r.Kind(); isWorker {
		if len(pools) == 0 {
			pools = []string{DefaultPool}
		}
		for _, p := range pools {
			if err := checkName("pool", p); err != nil {
				return User{}, err
			}
		}
	} else if len(pools) > 0 {
		return User{}, fmt.Errorf("%w: only worker roles serve pools, not %s", ErrBadName, r)
	}
	l := Layout{Dir: dir}
	trust, err := ReadTrust(l.Trust())
	if err != nil {
		return User{}, err
	}
	if _, err := os.Stat(l.Creds(r, name)); err == nil {
		return User{}, fmt.Errorf("%w: user %s (%s)", ErrExists, Principal(r, name), l.Creds(r, name))
	}
	kp, err := readKey(l.keys("roles", string(r)+".nk"))
	if err != nil {
		return User{}, fmt.Errorf("the %s signing key (needed to mint users; keys/ may be kept offline): %w", r, err)
	}
	return mintUser(l, kp, trust.Account, r, name, pools)
}

func mintUser(l Layout, signer nkeys.KeyPair, account string, r Role, name string, pools []string) (User, error) {
	ukp, err := nkeys.CreateUser()
	if err != nil {
		return User{}, fmt.Errorf("user key: %w", err)
	}
	upub, _ := ukp.PublicKey()
	useed, _ := ukp.Seed()
	uc := jwt.NewUserClaims(upub)
	uc.Name = name
	uc.IssuerAccount = account
	uc.Tags.Add(bus.RoleTag + ":" + string(r))
	for _, p := range pools {
		uc.Tags.Add(bus.PoolTag + ":" + p)
	}
	// The role's scoped signing key supplies the permissions; the user carries none.
	uc.SetScoped(true)
	token, err := uc.Encode(signer)
	if err != nil {
		return User{}, fmt.Errorf("sign user %s: %w", Principal(r, name), err)
	}
	creds, err := jwt.FormatUserConfig(token, useed)
	if err != nil {
		return User{}, fmt.Errorf("credentials of %s: %w", Principal(r, name), err)
	}
	u := User{Role: r, Name: name, Pools: pools, Creds: l.Creds(r, name), TokenFile: l.Token(r, name)}
	if err := writeFile(u.Creds, creds, 0o600); err != nil {
		return User{}, err
	}
	httpToken, err := issueToken(signer, r, name, upub)
	if err != nil {
		return User{}, err
	}
	if err := writeFile(u.TokenFile, []byte(httpToken+"\n"), 0o600); err != nil {
		return User{}, err
	}
	return u, nil
}

// serverAuthConfig is the operator-mode part of the server configuration: the operator, the
// system account and the SLUICE account with a scoped signing key per role, preloaded.
func serverAuthConfig(operator, system, account nkeys.KeyPair, roleKeys map[Role]nkeys.KeyPair, n bus.Names) (string, error) {
	opub, _ := operator.PublicKey()
	spub, _ := system.PublicKey()
	apub, _ := account.PublicKey()

	oc := jwt.NewOperatorClaims(opub)
	oc.Name = "sluice"
	oc.SystemAccount = spub
	ojwt, err := oc.Encode(operator)
	if err != nil {
		return "", fmt.Errorf("operator JWT: %w", err)
	}
	sc := jwt.NewAccountClaims(spub)
	sc.Name = "SYS"
	sjwt, err := sc.Encode(operator)
	if err != nil {
		return "", fmt.Errorf("system account JWT: %w", err)
	}
	ac := jwt.NewAccountClaims(apub)
	ac.Name = "SLUICE"
	ac.Limits.JetStreamLimits = jwt.JetStreamLimits{
		MemoryStorage: jwt.NoLimit, DiskStorage: jwt.NoLimit, Streams: jwt.NoLimit, Consumer: jwt.NoLimit,
		MaxAckPending: jwt.NoLimit, MemoryMaxStreamBytes: jwt.NoLimit, DiskMaxStreamBytes: jwt.NoLimit,
	}
	for _, r := range Roles() {
		scope := jwt.NewUserScope()
		scope.Key, _ = roleKeys[r].PublicKey()
		scope.Role = string(r)
		scope.Description = "Sluice role " + string(r)
		scope.Template.Permissions = Permissions(r, n)
		ac.SigningKeys.AddScopedSigner(scope)
	}
	ajwt, err := ac.Encode(operator)
	if err != nil {
		return "", fmt.Errorf("account JWT: %w", err)
	}
	var b strings.Builder
	b.WriteString("# Operator-mode authentication of a Sluice fleet, written by `sluice auth init`.\n")
	b.WriteString("# Include it from every server's configuration (a cluster's nodes alike).\n")
	fmt.Fprintf(&b, "operator: %q\n", ojwt)
	fmt.Fprintf(&b, "system_account: %q\n", spub)
	b.WriteString("resolver: MEMORY\n")
	b.WriteString("resolver_preload: {\n")
	fmt.Fprintf(&b, "  %s: %q\n", spub, sjwt)
	fmt.Fprintf(&b, "  %s: %q\n", apub, ajwt)
	b.WriteString("}\n")
	return b.String(), nil
}

// serverConfig is a whole single-server configuration around auth.conf.
func serverConfig(l Layout, o InitOptions) string {
	listen := o.Listen
	if listen == "" {
		listen = "127.0.0.1:4222"
	}
	store := o.StoreDir
	if store == "" {
		abs, err := filepath.Abs(filepath.Join(l.Dir, "jetstream"))
		if err != nil {
			abs = filepath.Join(l.Dir, "jetstream")
		}
		store = abs
	}
	return fmt.Sprintf(`# A nats-server for a Sluice fleet, written by `+"`sluice auth init`"+`.
# sluice dev --auth %[1]s runs it in-process (its --data and --nats-listen override the
# store and address below); on its own: nats-server -c %[2]s
listen: %[3]q
jetstream: {%[4]s}
include auth.conf
`, l.Dir, l.Config(), listen, jetStreamConfig(store, o.SyncAlways))
}

// ClusterConfig is the configuration of one node of the fleet's NATS cluster.
func (l Layout) ClusterConfig(host string) string {
	return filepath.Join(l.Dir, "cluster", host+".conf")
}

// hostName is what a cluster host may be called: a DNS name.
var hostName = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$`)

// Ports of a cluster node.
const (
	ClientPort  = 4222
	RoutePort   = 6222
	MonitorPort = 8222
)

// writeClusterConfigs writes cluster/<host>.conf for each host of o.Cluster: a node that
// routes to all the others and includes auth.conf, so the cluster shares one trust.
func writeClusterConfigs(l Layout, o InitOptions) error {
	if len(o.Cluster) == 0 {
		return nil
	}
	if err := os.MkdirAll(filepath.Join(l.Dir, "cluster"), 0o700); err != nil {
		return fmt.Errorf("auth init: %w", err)
	}
	store := o.ClusterStoreDir
	if store == "" {
		store = "/data/jetstream"
	}
	routes := make([]string, len(o.Cluster))
	for i, h := range o.Cluster {
		routes[i] = strconv.Quote(fmt.Sprintf("nats-route://%s:%d", h, RoutePort))
	}
	for _, h := range o.Cluster {
		conf := fmt.Sprintf(`# Node %[1]s of a Sluice fleet's NATS cluster, written by `+"`sluice auth init --cluster`"+`.
# Run: nats-server -c %[2]s (every node reads the auth directory's auth.conf too).
server_name: %[1]q
listen: "0.0.0.0:%[3]d"
http: "0.0.0.0:%[4]d"
jetstream: {%[5]s}
cluster: {
  name: "sluice"
  listen: "0.0.0.0:%[6]d"
  routes: [%[7]s]
}
include ../auth.conf
`, h, l.ClusterConfig(h), ClientPort, MonitorPort, jetStreamConfig(store, o.SyncAlways), RoutePort, strings.Join(routes, ", "))
		if err := writeFile(l.ClusterConfig(h), []byte(conf), 0o600); err != nil {
			return err
		}
	}
	return nil
}

func jetStreamConfig(store string, syncAlways bool) string {
	conf := fmt.Sprintf("store_dir: %q", store)
	if syncAlways {
		conf += ", sync_interval: always"
	}
	return conf
}

// defaultPolicy is the policy `auth init` writes: main is protected for the CI submitter.
const defaultPolicy = `# Sluice policy (sluice auth init). Coordinators read it at start.
#
# protected_refs: which principals may submit runs for a ref. A ref that no rule matches is
# open to every principal allowed to submit; a stage with ` + "`when: {branch: ...}`" + ` on a protected
# ref runs only in runs those principals submitted. Patterns are globs (main, release/*).
#
# groups: named sets of principals, usable in a stage's ` + "`approval: {by: [...]}`" + `.
#
# A principal is role:name (submitter:default, approver:alice), a role (every user of it),
# or a group.
protected_refs:
  - ref: main
    submitters: [submitter:default, admin]
groups:
  release-managers: [approver:default, admin]
`

func newKey(create func() (nkeys.KeyPair, error), path string) (nkeys.KeyPair, error) {
	kp, err := create()
	if err != nil {
		return nil, fmt.Errorf("create key: %w", err)
	}
	seed, _ := kp.Seed()
	if err := writeFile(path, append(seed, '\n'), 0o600); err != nil {
		return nil, err
	}
	return kp, nil
}

func readKey(path string) (nkeys.KeyPair, error) {
	seed, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	kp, err := nkeys.FromSeed([]byte(strings.TrimSpace(string(seed))))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return kp, nil
}

func newEvidenceKey(l Layout) (string, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return "", fmt.Errorf("evidence key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return "", fmt.Errorf("evidence key: %w", err)
	}
	if err := writeFile(l.EvidenceKey(), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return "", err
	}
	pubPEM, err := EncodePublicKey(pub)
	if err != nil {
		return "", err
	}
	if err := writeFile(l.EvidencePub(), pubPEM, 0o644); err != nil {
		return "", err
	}
	return string(pubPEM), nil
}

// EncodePublicKey renders an ed25519 public key as PEM (PKIX).
func EncodePublicKey(pub ed25519.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("public key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}

// ParsePublicKey reads an ed25519 public key in PEM (PKIX).
func ParsePublicKey(data []byte) (ed25519.PublicKey, error) {
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "PUBLIC KEY" {
		return nil, errors.New("not a PEM public key (-----BEGIN PUBLIC KEY-----)")
	}
	key, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("public key: %w", err)
	}
	pub, ok := key.(ed25519.PublicKey)
	if !ok {
		return nil, errors.New("public key is not ed25519")
	}
	return pub, nil
}

// ReadPrivateKey reads an ed25519 private key in PEM (PKCS #8).
func ReadPrivateKey(path string) (ed25519.PrivateKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("evidence key: %w", err)
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("evidence key %s: not a PEM private key", path)
	}
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("evidence key %s: %w", path, err)
	}
	priv, ok := key.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("evidence key %s: not ed25519", path)
	}
	return priv, nil
}

func writeFile(path string, data []byte, mode fs.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.WriteFile(path, data, mode); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

func writeJSON(path string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", path, err)
	}
	return writeFile(path, append(data, '\n'), 0o644)
}

func roleList() string {
	var s []string
	for _, r := range Roles() {
		s = append(s, string(r))
	}
	slices.Sort(s)
	return strings.Join(s, ", ")
}
