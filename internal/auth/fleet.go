package auth

import (
	"crypto/ed25519"
	"fmt"
	"os"
)

// Fleet is what a coordinator takes from an auth directory: the trust file (to check HTTP
// tokens), the policy, and the evidence signing key.
type Fleet struct {
	Layout      Layout
	Trust       Trust
	Policy      *Policy
	EvidenceKey ed25519.PrivateKey
}

// LoadFleet reads the coordinator's part of an auth directory made by Init. A missing
// policy file is an empty policy; a missing evidence key is an error.
func LoadFleet(dir string) (*Fleet, error) {
	l := Layout{Dir: dir}
	trust, err := ReadTrust(l.Trust())
	if err != nil {
		return nil, err
	}
	f := &Fleet{Layout: l, Trust: trust, Policy: &Policy{}}
	if _, err := os.Stat(l.Policy()); err == nil {
		if f.Policy, err = LoadPolicy(l.Policy()); err != nil {
			return nil, err
		}
	}
	if f.EvidenceKey, err = ReadPrivateKey(l.EvidenceKey()); err != nil {
		return nil, fmt.Errorf("%w (coordinators sign evidence with it; copy %s to every coordinator's auth directory)", err, l.EvidenceKey())
	}
	return f, nil
}
