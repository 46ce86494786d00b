package auth

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// Policy says who may submit which refs and names groups of principals for approvals. The
// zero Policy protects nothing and has no groups.
type Policy struct {
	ProtectedRefs []RefRule           `yaml:"protected_refs"`
	Groups        map[string][]string `yaml:"groups"`
}

// RefRule protects the refs matching Ref (a glob): only Submitters may submit runs for them.
type RefRule struct {
	Ref        string   `yaml:"ref"`
	Submitters []string `yaml:"submitters"`
}

// LoadPolicy reads a policy file strictly: an unknown field, a bad glob, or a principal
// naming an unknown role or group is an error naming the file and line.
func LoadPolicy(file string) (*Policy, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadPolicy, err)
	}
	return ParsePolicy(file, data)
}

// ParsePolicy parses a policy; file names it in errors.
func ParsePolicy(file string, data []byte) (*Policy, error) {
	var p Policy
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&p); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w: %s: %s", ErrBadPolicy, file, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	for g := range p.Groups {
		if _, isRole := ParseRole(g); isRole || checkName("group", g) != nil {
			return nil, fmt.Errorf("%w: %s: groups.%s: a group name is a token that is not a role", ErrBadPolicy, file, g)
		}
	}
	for g, members := range p.Groups {
		for _, m := range members {
			if err := p.checkPrincipal(m, false); err != nil {
				return nil, fmt.Errorf("%w: %s: groups.%s: %v", ErrBadPolicy, file, g, err)
			}
		}
	}
	for i, r := range p.ProtectedRefs {
		if _, err := path.Match(r.Ref, ""); err != nil || r.Ref == "" {
			return nil, fmt.Errorf("%w: %s: protected_refs[%d].ref %q: want a glob such as main or release/*", ErrBadPolicy, file, i, r.Ref)
		}
		for _, m := range r.Submitters {
			if err := p.checkPrincipal(m, true); err != nil {
				return nil, fmt.Errorf("%w: %s: protected_refs[%d].submitters: %v", ErrBadPolicy, file, i, err)
			}
		}
	}
	return &p, nil
}

// CheckApprovers checks a stage's approval.by list against the policy: every entry names a
// role, a principal of a known role, or a group of this policy.
func (p *Policy) CheckApprovers(by []string) error {
	for _, b := range by {
		if err := p.checkPrincipal(b, true); err != nil {
			return err
		}
	}
	return nil
}

// checkPrincipal accepts role:name, a role, and (when groups are allowed) a group.
func (p *Policy) checkPrincipal(s string, groups bool) error {
	role, name, hasName := strings.Cut(s, ":")
	if _, ok := ParseRole(role); ok {
		if hasName {
			return checkName("user name in "+s, name)
		}
		return nil
	}
	if !hasName && groups && p != nil {
		if _, ok := p.Groups[s]; ok {
			return nil
		}
	}
	what := "a role or role:name"
	if groups {
		what += ", or a group under groups:"
	}
	return fmt.Errorf("%q is not %s", s, what)
}

// Matches reports whether principal (role:name) is one of list: listed itself, its role
// listed, or a member of a listed group.
func (p *Policy) Matches(principal string, list []string) bool {
	role, _, _ := strings.Cut(principal, ":")
	for _, m := range list {
		switch {
		case m == principal, m == role:
			return true
		case p != nil && p.Groups[m] != nil:
			if slices.ContainsFunc(p.Groups[m], func(g string) bool { return g == principal || g == role }) {
				return true
			}
		}
	}
	return false
}

// Protected returns the rule that protects ref, if any (the first that matches).
func (p *Policy) Protected(ref string) (RefRule, bool) {
	if p == nil {
		return RefRule{}, false
	}
	ref = strings.TrimPrefix(ref, "refs/heads/")
	for _, r := range p.ProtectedRefs {
		if ok, _ := path.Match(r.Ref, ref); ok {
			return r, true
		}
	}
	return RefRule{}, false
}
