package auth

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"github.com/nats-io/nkeys"
)

// Trust is the public half of an auth directory: what a coordinator needs to check who calls
// it over HTTP, and what a verifier needs to check evidence. It holds no secret.
type Trust struct {
	Version  int    `json:"version"`
	Prefix   string `json:"prefix"`
	Operator string `json:"operator"`
	Account  string `json:"account"`
	// Roles maps each role to the public key of its signing key.
	Roles map[string]string `json:"roles"`
	// EvidenceKey is the PEM public key that verifies evidence and signed events.
	EvidenceKey string `json:"evidence_key"`
}

// ReadTrust reads a trust file.
func ReadTrust(path string) (Trust, error) {
	var t Trust
	data, err := os.ReadFile(path)
	if err != nil {
		return t, fmt.Errorf("trust file: %w (is this a directory made by `sluice auth init`?)", err)
	}
	if err := json.Unmarshal(data, &t); err != nil {
		return t, fmt.Errorf("trust file %s: %w", path, err)
	}
	if t.Version != 1 || len(t.Roles) == 0 {
		return t, fmt.Errorf("trust file %s: version %d with %d roles; want version 1 from `sluice auth init`", path, t.Version, len(t.Roles))
	}
	return t, nil
}

// EvidencePublicKey is the key that verifies the fleet's evidence.
func (t Trust) EvidencePublicKey() (ed25519.PublicKey, error) {
	return ParsePublicKey([]byte(t.EvidenceKey))
}

// An HTTP token is "sluice1.<claims>.<signature>": base64url JSON claims naming a role and a
// user, signed by the role's signing key, the same key that vouches for the user's NATS
// credentials. A coordinator checks it against the trust file, so it holds no token list.
const tokenPrefix = "sluice1."

type tokenClaims struct {
	Role string `json:"role"`
	Name string `json:"name"`
	User string `json:"user"`
}

func tokenMessage(claims string) []byte { return []byte("sluice-http-token-v1\n" + claims) }

func issueToken(signer nkeys.KeyPair, r Role, name, user string) (string, error) {
	data, err := json.Marshal(tokenClaims{Role: string(r), Name: name, User: user})
	if err != nil {
		return "", err
	}
	claims := base64.RawURLEncoding.EncodeToString(data)
	sig, err := signer.Sign(tokenMessage(claims))
	if err != nil {
		return "", fmt.Errorf("sign HTTP token of %s: %w", Principal(r, name), err)
	}
	return tokenPrefix + claims + "." + base64.RawURLEncoding.EncodeToString(sig), nil
}

// VerifyToken returns the role and name an HTTP token speaks for, or an error wrapping
// ErrBadToken.
func (t Trust) VerifyToken(token string) (Role, string, error) {
	rest, ok := strings.CutPrefix(strings.TrimSpace(token), tokenPrefix)
	if !ok {
		return "", "", fmt.Errorf("%w: not a Sluice token (tokens/<role>.token from `sluice auth init`)", ErrBadToken)
	}
	claims, sigText, ok := strings.Cut(rest, ".")
	if !ok {
		return "", "", fmt.Errorf("%w: no signature", ErrBadToken)
	}
	data, err1 := base64.RawURLEncoding.DecodeString(claims)
	sig, err2 := base64.RawURLEncoding.DecodeString(sigText)
	var c tokenClaims
	if err1 != nil || err2 != nil || json.Unmarshal(data, &c) != nil {
		return "", "", fmt.Errorf("%w: malformed", ErrBadToken)
	}
	r, known := ParseRole(c.Role)
	key := t.Roles[c.Role]
	if !known || key == "" {
		return "", "", fmt.Errorf("%w: role %q is not a role of this fleet", ErrBadToken, c.Role)
	}
	kp, err := nkeys.FromPublicKey(key)
	if err != nil {
		return "", "", fmt.Errorf("%w: trust file key of %s: %v", ErrBadToken, r, err)
	}
	if err := kp.Verify(tokenMessage(claims), sig); err != nil {
		return "", "", fmt.Errorf("%w: signature does not verify for role %s", ErrBadToken, r)
	}
	if checkName("user name", c.Name) != nil {
		return "", "", fmt.Errorf("%w: bad user name", ErrBadToken)
	}
	return r, c.Name, nil
}
