package auth

import (
	"errors"
	"strings"
	"testing"
)

func TestDefaultPolicyReads(t *testing.T) {
	p, err := ParsePolicy("policy.yaml", []byte(defaultPolicy))
	if err != nil {
		t.Fatal(err)
	}
	rule, ok := p.Protected("refs/heads/main")
	if !ok || !p.Matches("submitter:default", rule.Submitters) || p.Matches("submitter:dev", rule.Submitters) {
		t.Fatalf("main is protected by %v (%v)", rule, ok)
	}
	if !p.Matches("approver:default", []string{"release-managers"}) {
		t.Fatal("the release-managers group does not hold approver:default")
	}
}

// A bad policy is refused whole, every problem at once, each with its position and field:
// a coordinator must never run on half a policy.
func TestPolicyErrors(t *testing.T) {
	tests := []struct{ name, yaml, want string }{
		{"unknown field", "protected_ref: []\n", `policy.yaml:1:1: protected_ref: unknown field "protected_ref" in policy (did you mean "protected_refs"?)`},
		{"bad glob", "protected_refs:\n  - {ref: 'release/[', submitters: [admin]}\n", `policy.yaml:2:11: protected_refs[0].ref: "release/[": want a glob`},
		{"no ref", "protected_refs:\n  - {submitters: [admin]}\n", "policy.yaml:2:5: protected_refs[0].ref: missing"},
		{"unknown role", "protected_refs:\n  - {ref: main, submitters: [ci]}\n", `policy.yaml:2:30: protected_refs[0].submitters[0]: "ci" is not a role or role:name, or a group under groups:`},
		{"group naming a role", "groups:\n  approver: [admin]\n", "policy.yaml:2:3: groups.approver: a group name is a token that is not a role"},
		{"group of a group", "groups:\n  a: [admin]\n  b: [a]\n", `policy.yaml:3:7: groups.b[0]: "a" is not a role or role:name`},
		{"a list", "- main\n", "policy.yaml:1:1: a policy is a mapping with protected_refs and groups, got a list"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParsePolicy("policy.yaml", []byte(tt.yaml))
			if !errors.Is(err, ErrBadPolicy) || !strings.HasPrefix(err.Error(), tt.want) {
				t.Fatalf("ParsePolicy: %v\nwant ErrBadPolicy starting with %q", err, tt.want)
			}
		})
	}
	// Submitters may name a group defined further down the file.
	if _, err := ParsePolicy("policy.yaml", []byte("protected_refs:\n  - {ref: main, submitters: [ci]}\ngroups:\n  ci: [submitter:ci]\n")); err != nil {
		t.Fatalf("a group used before its definition: %v", err)
	}
	_, err := ParsePolicy("policy.yaml", []byte("protected_refs:\n  - {ref: '[', submitters: [x]}\ngroups:\n  a: [nobody]\n"))
	if n := len(strings.Split(err.Error(), "\n")); n != 3 {
		t.Fatalf("%d problems reported, want 3:\n%v", n, err)
	}
}
