package auth

import (
	"bytes"
	"fmt"
	"os"
	pathpkg "path"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/sluice-ci/sluice/internal/strictyaml"
)

// Policy says who may submit which refs and names groups of principals for approvals. The
// zero Policy protects nothing and has no groups.
type Policy struct {
	ProtectedRefs []RefRule
	Groups        map[string][]string
}

// RefRule protects the refs matching Ref (a glob): only Submitters may submit runs for them.
type RefRule struct {
	Ref        string
	Submitters []string
}

// LoadPolicy reads a policy file strictly: an unknown field, a bad glob, or a principal
// naming an unknown role or group is an error naming the file, line, column and field.
func LoadPolicy(file string) (*Policy, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		d := &strictyaml.Decoder{File: file, Kind: ErrBadPolicy}
		d.Failf("cannot read the policy: %v", err)
		return nil, d.Err()
	}
	return ParsePolicy(file, data)
}

var policyFormat = strictyaml.Format{Name: "policy", Needs: "protected_refs and groups"}

// ParsePolicy parses a policy; file names it in errors. Every problem is reported, and each
// wraps ErrBadPolicy.
func ParsePolicy(file string, data []byte) (*Policy, error) {
	d := &strictyaml.Decoder{File: file, Kind: ErrBadPolicy}
	p := &Policy{}
	if len(bytes.TrimSpace(data)) == 0 {
		return p, nil
	}
	root := d.Root(data, policyFormat)
	if root == nil {
		return nil, d.Err()
	}
	// Groups first, wherever they are in the file: submitters may name them.
	type member struct {
		path string
		n    *yaml.Node
	}
	var members []member
	if g := strictyaml.ValueOf(root, "groups"); g != nil {
		p.Groups = map[string][]string{}
		d.Pairs(g, "groups", func(name string, k, v *yaml.Node) {
			path := strictyaml.Join("groups", name)
			if _, isRole := ParseRole(name); isRole || checkName("group", name) != nil {
				d.Errorf(k, path, "a group name is a token that is not a role")
			}
			nodes, paths := d.Items(path, v)
			for i, n := range nodes {
				p.Groups[name] = append(p.Groups[name], d.Str(paths[i], n))
				members = append(members, member{paths[i], n})
			}
		})
	}
	for _, m := range members {
		if err := p.checkPrincipal(strictyaml.Resolve(m.n).Value, false); err != nil {
			d.Errorf(m.n, m.path, "%v", err)
		}
	}
	d.Fields(root, "", "policy", []strictyaml.Field{
		{Name: "groups", Fn: func(string, *yaml.Node, *yaml.Node) {}},
		{Name: "protected_refs", Fn: func(path string, _, v *yaml.Node) {
			d.List(path, v, func(path string, _ int, item *yaml.Node) {
				var r RefRule
				d.Fields(item, path, "protected ref", []strictyaml.Field{
					{Name: "ref", Fn: func(path string, _, v *yaml.Node) {
						r.Ref = d.Str(path, v)
						if _, err := pathpkg.Match(r.Ref, ""); err != nil || r.Ref == "" {
							d.Errorf(strictyaml.Resolve(v), path, "%q: want a glob such as main or release/*", r.Ref)
						}
					}},
					{Name: "submitters", Fn: func(path string, _, v *yaml.Node) {
						nodes, paths := d.Items(path, v)
						for i, n := range nodes {
							m := d.Str(paths[i], n)
							if err := p.checkPrincipal(m, true); err != nil {
								d.Errorf(n, paths[i], "%v", err)
							}
							r.Submitters = append(r.Submitters, m)
						}
					}},
				})
				if r.Ref == "" {
					d.Errorf(item, strictyaml.Join(path, "ref"), "missing: a protected ref names the refs it protects (a glob such as main or release/*)")
				}
				p.ProtectedRefs = append(p.ProtectedRefs, r)
			})
		}},
	})
	if err := d.Err(); err != nil {
		return nil, err
	}
	return p, nil
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
		if ok, _ := pathpkg.Match(r.Ref, ref); ok {
			return r, true
		}
	}
	return RefRule{}, false
}
