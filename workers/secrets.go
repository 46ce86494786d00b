package workers

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

	sluicev1 "github.com/sluice-ci/sluice/proto/sluice/v1"
)

// Secrets is what a worker lets stages read of its environment: nothing but the grants its
// --secrets file lists, each for the pipelines and refs it names. A stage names the secrets
// it wants (secrets: [...], backup_verify.dsn_env); a name no grant gives the task's
// pipeline and ref fails the task with the reason. Names of Sluice's own variables
// (SLUICE_*, NATS_*) cannot be granted: the worker's credentials are never a step's.
type Secrets struct {
	Grants []SecretGrant `yaml:"secrets"`
	// LookupEnv reads the worker's environment; nil means os.LookupEnv.
	LookupEnv func(string) (string, bool) `yaml:"-"`
}

// SecretGrant gives one variable of the worker's environment to some stages.
type SecretGrant struct {
	// Name is what stages ask for, and the variable the step sees.
	Name string `yaml:"name"`
	// FromEnv is the worker's variable holding the value; default Name.
	FromEnv string `yaml:"from_env"`
	// Pipelines and Refs are globs; empty means any.
	Pipelines []string `yaml:"pipelines"`
	Refs      []string `yaml:"refs"`
	// Protected gives the secret only to runs of protected refs (the coordinator's policy
	// says which): production credentials never reach a branch anyone may push.
	Protected bool `yaml:"protected"`
}

// ErrSecretDenied: a stage asked for a secret the worker does not grant it.
var ErrSecretDenied = errors.New("secret not granted")

// LoadSecrets reads a secrets file strictly.
func LoadSecrets(file string) (*Secrets, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("secrets file: %w", err)
	}
	var s Secrets
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&s); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w: secrets file %s: %s", ErrBadConfig, file, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	for i, g := range s.Grants {
		where := fmt.Sprintf("%s: secrets[%d]", file, i)
		if !sluicev1.IsEnvName(g.Name) || g.FromEnv != "" && !sluicev1.IsEnvName(g.FromEnv) {
			return nil, fmt.Errorf("%w: %s: name %q / from_env %q: environment variable names", ErrBadConfig, where, g.Name, g.FromEnv)
		}
		for _, n := range []string{g.Name, g.FromEnv} {
			if ownVariable(n) {
				return nil, fmt.Errorf("%w: %s: %s is one of Sluice's own variables (credentials, tokens) and cannot be given to steps", ErrBadConfig, where, n)
			}
		}
		for _, p := range append(slices.Clone(g.Pipelines), g.Refs...) {
			if _, err := path.Match(p, ""); err != nil {
				return nil, fmt.Errorf("%w: %s: bad glob %q", ErrBadConfig, where, p)
			}
		}
	}
	return &s, nil
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
	return slices.ContainsFunc(globs, func(g string) bool { ok, _ := path.Match(g, s); return ok })
}

// ownVariable reports whether an environment variable is Sluice's (credentials, tokens,
// fleet addresses), which no grant may hand to a step.
func ownVariable(name string) bool {
	return strings.HasPrefix(name, "SLUICE_") || strings.HasPrefix(name, "NATS_")
}
