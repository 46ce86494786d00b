package workers

import (
	"bytes"
	"fmt"
	"os"
	pathpkg "path"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/sluice-ci/sluice/internal/strictyaml"

	sluicev1 "github.com/sluice-ci/sluice/proto/sluice/v1"
)

// Secrets is what a worker lets stages read of its environment: nothing but the grants its
// --secrets file lists, each for the pipelines and refs it names. A stage names the secrets
// it wants (secrets: [...], backup_verify.dsn_env); a name no grant gives the task's
// pipeline and ref fails the task with the reason. Names of Sluice's own variables
// (SLUICE_*, NATS_*) cannot be granted: the worker's credentials are never a step's.
type Secrets struct {
	Grants []SecretGrant
	// LookupEnv reads the worker's environment; nil means os.LookupEnv.
	LookupEnv func(string) (string, bool)
}

// SecretGrant gives one variable of the worker's environment to some stages.
type SecretGrant struct {
	// Name is what stages ask for, and the variable the step sees.
	Name string
	// FromEnv is the worker's variable holding the value; default Name.
	FromEnv string
	// Pipelines and Refs are globs; empty means any.
	Pipelines []string
	Refs      []string
	// Protected gives the secret only to runs of protected refs (the coordinator's policy
	// says which): production credentials never reach a branch anyone may push.
	Protected bool
}

var secretsFormat = strictyaml.Format{Name: "secrets file", Needs: "secrets, a list of grants"}

// LoadSecrets reads a secrets file strictly; every problem is reported, naming its line,
// column and field, and wraps ErrBadConfig.
func LoadSecrets(file string) (*Secrets, error) {
	d := &strictyaml.Decoder{File: file, Kind: ErrBadConfig}
	data, err := os.ReadFile(file)
	if err != nil {
		d.Failf("cannot read the secrets file: %v", err)
		return nil, d.Err()
	}
	s := &Secrets{}
	if len(bytes.TrimSpace(data)) == 0 {
		return s, nil
	}
	root := d.Root(data, secretsFormat)
	if root == nil {
		return nil, d.Err()
	}
	d.Fields(root, "", "secrets file", []strictyaml.Field{{Name: "secrets", Fn: func(path string, _, v *yaml.Node) {
		d.List(path, v, func(path string, _ int, item *yaml.Node) { s.Grants = append(s.Grants, grant(d, path, item)) })
	}}})
	if err := d.Err(); err != nil {
		return nil, err
	}
	return s, nil
}

// grant decodes one grant of a secrets file.
func grant(d *strictyaml.Decoder, path string, n *yaml.Node) SecretGrant {
	var g SecretGrant
	envName := func(path string, v *yaml.Node) string {
		name := d.Str(path, v)
		switch {
		case !sluicev1.IsEnvName(name):
			d.Errorf(strictyaml.Resolve(v), path, "%q is not an environment variable name: use letters, digits and '_', not starting with a digit", name)
		case ownVariable(name):
			d.Errorf(strictyaml.Resolve(v), path, "%s is one of Sluice's own variables (credentials, tokens) and cannot be given to steps", name)
		}
		return name
	}
	globs := func(path string, v *yaml.Node) []string {
		nodes, paths := d.Items(path, v)
		var out []string
		for i, item := range nodes {
			glob := d.Str(paths[i], item)
			if _, err := pathpkg.Match(glob, ""); err != nil {
				d.Errorf(item, paths[i], "bad glob %q: %v", glob, err)
			}
			out = append(out, glob)
		}
		return out
	}
	d.Fields(n, path, "grant", []strictyaml.Field{
		{Name: "name", Fn: func(path string, _, v *yaml.Node) { g.Name = envName(path, v) }},
		{Name: "from_env", Fn: func(path string, _, v *yaml.Node) { g.FromEnv = envName(path, v) }},
		{Name: "pipelines", Fn: func(path string, _, v *yaml.Node) { g.Pipelines = globs(path, v) }},
		{Name: "refs", Fn: func(path string, _, v *yaml.Node) { g.Refs = globs(path, v) }},
		{Name: "protected", Fn: func(path string, _, v *yaml.Node) { g.Protected = d.Bool(path, v) }},
	})
	if g.Name == "" {
		d.Errorf(n, strictyaml.Join(path, "name"), "missing: a grant names the variable stages ask for")
	}
	return g
}

// requested are the secret names a task asks for.
func requested(t *sluicev1.Task) []string {
	names := slices.Clone(t.GetSpec().GetSecrets())
	if dsn := t.GetSpec().GetBackupVerify().GetDsnEnv(); dsn != "" && !slices.Contains(names, dsn) {
		names = append(names, dsn)
	}
	return names
}

// Grant returns the values of the secrets task asks for, or an error naming each it may
// not have and why.
func (s *Secrets) Grant(t *sluicev1.Task) (map[string]string, error) {
	names := requested(t)
	if len(names) == 0 {
		return nil, nil
	}
	lookup := os.LookupEnv
	if s != nil && s.LookupEnv != nil {
		lookup = s.LookupEnv
	}
	out := map[string]string{}
	var denied []string
	for _, name := range names {
		g, why := s.grantFor(name, t)
		if why != "" {
			denied = append(denied, name+" ("+why+")")
			continue
		}
		from := g.FromEnv
		if from == "" {
			from = g.Name
		}
		if ownVariable(from) {
			denied = append(denied, fmt.Sprintf("%s (%s is one of Sluice's own variables)", name, from))
			continue
		}
		v, ok := lookup(from)
		if !ok {
			denied = append(denied, fmt.Sprintf("%s (granted, but %s is not set in the worker's environment)", name, from))
			continue
		}
		out[name] = v
	}
	if len(denied) > 0 {
		return nil, fmt.Errorf("%w: %s", ErrSecretDenied, strings.Join(denied, "; "))
	}
	return out, nil
}

func (s *Secrets) grantFor(name string, t *sluicev1.Task) (SecretGrant, string) {
	if s == nil || len(s.Grants) == 0 {
		return SecretGrant{}, "this worker grants no secrets: start it with --secrets FILE"
	}
	why := "no grant of this worker's --secrets names it"
	for _, g := range s.Grants {
		if g.Name != name {
			continue
		}
		switch {
		case len(g.Pipelines) > 0 && !matchAny(g.Pipelines, t.GetPipeline()):
			why = fmt.Sprintf("granted to pipelines %v, not %s", g.Pipelines, t.GetPipeline())
		case len(g.Refs) > 0 && !matchAny(g.Refs, strings.TrimPrefix(t.GetRef(), "refs/heads/")):
			why = fmt.Sprintf("granted to refs %v, not %s", g.Refs, t.GetRef())
		case g.Protected && !t.GetRefProtected():
			why = fmt.Sprintf("granted to protected refs only, and %s is not protected", t.GetRef())
		default:
			return g, ""
		}
	}
	return SecretGrant{}, why
}

func matchAny(globs []string, s string) bool {
	return slices.ContainsFunc(globs, func(g string) bool { ok, _ := pathpkg.Match(g, s); return ok })
}

// ownVariable reports whether an environment variable is Sluice's (credentials, tokens,
// fleet addresses), which no grant may hand to a step.
func ownVariable(name string) bool {
	return strings.HasPrefix(name, "SLUICE_") || strings.HasPrefix(name, "NATS_")
}
