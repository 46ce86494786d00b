// Package spec parses and validates Sluice pipeline files into sluicev1.PipelineSpec.
//
// A pipeline file is YAML, read strictly: an unknown field at any level, a duplicate key, a
// value of the wrong shape, an unknown kind or `needs`, a cycle, a bad duration or an
// out-of-range number is an error naming the file, line, column and field
// ("pipeline.yaml:12:5: stages.test.timeout: ..."). Every problem found is reported, one per
// line, sorted by line. Stages keep file order.
//
// Defaults for a stage that does not say: pool "default", shards 1, retries 0, timeout 30m,
// retry_backoff 1s; a rollout's on_failure is "rollback". Every list of strings (run, needs,
// secrets, when.branch, ...) also accepts a single string.
//
// Variables: after the YAML is parsed, ${NAME} in a string value is replaced by the first of
// the --set vars, the pipeline's env: block, the process environment that defines NAME. The
// replacement is never parsed as YAML or expanded again, so a value cannot inject structure.
// $${NAME} is a literal ${NAME}. Pipeline env values may use --set vars and the process
// environment; a --set var named like a pipeline env key also overrides that key's value, so
// the steps see what the substitutions saw. Inside run: commands only --set vars and pipeline
// env are replaced and any other reference is left for the worker's shell (e.g.
// ${SLUICE_SHARD_INDEX}); anywhere else an unresolved reference is an error.
package spec

import (
	"fmt"
	"math"
	"os"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"gopkg.in/yaml.v3"

	"github.com/sluice-ci/sluice/internal/strictyaml"
	sluicev1 "github.com/sluice-ci/sluice/proto/sluice/v1"
)

// Version is the pipeline file format this package reads.
const Version = 1

// Stage defaults (see the package comment).
const (
	DefaultPool         = "default"
	DefaultShards       = 1
	DefaultTimeout      = 30 * time.Minute
	DefaultRetryBackoff = time.Second
	MaxShards           = 256
	MaxRetries          = 10
	// MaxStages bounds a pipeline: a run's state is one record, rewritten on each transition.
	MaxStages = 1000
	// MaxTimeout bounds a stage's timeout and a health check's; MaxRetryBackoff its backoff.
	MaxTimeout      = 24 * time.Hour
	MaxRetryBackoff = time.Hour
)

// MaxNodes bounds the YAML values in one pipeline, counting anchors once per use. Real
// pipelines have hundreds.
const MaxNodes = 100_000

// ParseFile reads, parses and validates the pipeline file at path. vars are the --set values;
// the process environment is consulted after them and the pipeline's env: block.
func ParseFile(path string, vars map[string]string) (*sluicev1.PipelineSpec, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read pipeline: %w", err)
	}
	return Parse(path, data, vars, os.LookupEnv)
}

// Parse parses and validates a pipeline. file names it in errors; lookupEnv (nil: none) stands
// for the process environment. The error is an *Error for one problem or Errors for several.
func Parse(file string, data []byte, vars map[string]string, lookupEnv func(string) (string, bool)) (*sluicev1.PipelineSpec, error) {
	d := newDecoder(file)
	root := d.Root(data, strictyaml.Format{Name: "pipeline file", Needs: "version, name and stages", MaxNodes: MaxNodes})
	if root == nil {
		return nil, d.Err()
	}
	if lookupEnv == nil {
		lookupEnv = func(string) (string, bool) { return "", false }
	}
	p := &sluicev1.PipelineSpec{File: file}

	// The env: block goes first, wherever it is in the file: every other value may use it.
	d.lookup = func(name string) (string, bool) {
		if v, ok := vars[name]; ok {
			return v, true
		}
		return lookupEnv(name)
	}
	if n := valueOf(root, "env"); n != nil {
		p.Env = d.StringMap("env", n, sluicev1.IsEnvName, "use letters, digits and '_', not starting with a digit")
	}
	for k := range p.Env {
		if v, ok := vars[k]; ok {
			p.Env[k] = v
		}
	}
	d.runLookup = func(name string) (string, bool) {
		if v, ok := vars[name]; ok {
			return v, true
		}
		v, ok := p.Env[name]
		return v, ok
	}
	d.lookup = func(name string) (string, bool) {
		if v, ok := d.runLookup(name); ok {
			return v, true
		}
		return lookupEnv(name)
	}

	var versionSet, nameSet, stagesSet bool
	var graph []stageNodes
	d.Fields(root, "", "pipeline", []field{
		{Name: "version", Fn: func(path string, _, v *yaml.Node) {
			versionSet = true
			n, ok := d.Int(path, v, 0, math.MaxInt32)
			if ok && n != Version {
				d.Errorf(resolve(v), path, "unsupported version %d: this Sluice reads version %d", n, Version)
			}
			p.Version = int32(n)
		}},
		{Name: "name", Fn: func(path string, _, v *yaml.Node) {
			nameSet = true
			p.Name = d.token(path, v, "pipeline name")
		}},
		{Name: "env", Fn: func(string, *yaml.Node, *yaml.Node) {}},
		{Name: "stages", Fn: func(path string, k, v *yaml.Node) {
			stagesSet = true
			p.Stages, graph = d.stages(path, k, v)
		}},
	})
	for _, req := range []struct {
		set        bool
		name, todo string
	}{
		{versionSet, "version", "add `version: 1` at the top of the file"},
		{nameSet, "name", "add `name: my-pipeline` (letters, digits, '-' and '_')"},
		{stagesSet, "stages", "add a `stages:` mapping with at least one stage"},
	} {
		if !req.set {
			d.Errorf(root, req.name, "missing: %s", req.todo)
		}
	}
	d.checkNeeds(graph)
	if err := d.Err(); err != nil {
		return nil, err
	}
	return p, nil
}

// stageNodes keeps where a stage and each of its needs are written, for graph errors.
type stageNodes struct {
	stage *sluicev1.StageSpec
	key   *yaml.Node
	needs []*yaml.Node
}

func (d *decoder) stages(path string, key, n *yaml.Node) ([]*sluicev1.StageSpec, []stageNodes) {
	var (
		stages []*sluicev1.StageSpec
		graph  []stageNodes
	)
	ok := d.Entries(n, path, "stage", "rename or remove one", func(name string, k, v *yaml.Node) {
		spath := join(path, name)
		if !isToken(name) {
			d.Errorf(k, spath, "invalid stage name %q: use only letters, digits, '-' and '_' (it becomes a NATS subject token)", name)
		}
		s, needs := d.stage(spath, name, k, v)
		stages = append(stages, s)
		graph = append(graph, stageNodes{stage: s, key: k, needs: needs})
	})
	if ok && len(stages) == 0 && len(resolve(n).Content) == 0 {
		d.Errorf(key, path, "no stages: add at least one, e.g. `lint: {kind: static, run: [\"go vet ./...\"]}`")
	}
	if len(stages) > MaxStages {
		d.Errorf(key, path, "%d stages, the limit is %d: split the pipeline", len(stages), MaxStages)
	}
	return stages, graph
}

// kindBlocks are the stage fields that configure one kind's engine.
var kindBlocks = []struct {
	field string
	kind  sluicev1.StageKind
}{
	{"governance", sluicev1.StageKind_STAGE_KIND_STATIC},
	{"warnings", sluicev1.StageKind_STAGE_KIND_STATIC},
	{"contract", sluicev1.StageKind_STAGE_KIND_CONTRACT},
	{"backup_verify", sluicev1.StageKind_STAGE_KIND_BACKUP_VERIFY},
	{"e2e", sluicev1.StageKind_STAGE_KIND_E2E},
	{"load", sluicev1.StageKind_STAGE_KIND_LOAD},
	{"rollout", sluicev1.StageKind_STAGE_KIND_TRAFFIC_SHIFT},
}

func blockOf(kind sluicev1.StageKind) string {
	for _, b := range kindBlocks {
		if b.kind == kind {
			return b.field
		}
	}
	return ""
}

func (d *decoder) stage(path, name string, key, n *yaml.Node) (*sluicev1.StageSpec, []*yaml.Node) {
	s := &sluicev1.StageSpec{
		Name:         name,
		Line:         int32(key.Line),
		Shards:       DefaultShards,
		Pool:         DefaultPool,
		Timeout:      durationpb.New(DefaultTimeout),
		RetryBackoff: durationpb.New(DefaultRetryBackoff),
	}
	var (
		needs       []*yaml.Node
		kindSet     bool
		blocks      []*yaml.Node // keys of the kind blocks present
		warningsKey *yaml.Node
	)
	block := func(decode func(path string, v *yaml.Node)) func(string, *yaml.Node, *yaml.Node) {
		return func(path string, k, v *yaml.Node) {
			blocks = append(blocks, k)
			decode(path, v)
		}
	}
	d.Fields(n, path, "stage", []field{
		{Name: "kind", Fn: func(path string, _, v *yaml.Node) {
			kindSet = true
			slug, ok := d.Scalar(path, v)
			if !ok {
				return
			}
			kind, err := sluicev1.ParseStageKind(slug)
			if err != nil {
				d.Errorf(resolve(v), path, "%v", err)
			}
			s.Kind = kind
		}},
		{Name: "needs", Fn: func(path string, _, v *yaml.Node) {
			nodes, paths := d.Items(path, v)
			for i, item := range nodes {
				s.Needs = append(s.Needs, d.Str(paths[i], item))
				needs = append(needs, item)
			}
		}},
		{Name: "run", Fn: func(path string, _, v *yaml.Node) { s.Run = d.commands(path, v) }},
		{Name: "env", Fn: func(path string, _, v *yaml.Node) {
			s.Env = d.StringMap(path, v, sluicev1.IsEnvName, "use letters, digits and '_', not starting with a digit")
		}},
		{Name: "secrets", Fn: func(path string, _, v *yaml.Node) {
			nodes, paths := d.Items(path, v)
			for i, item := range nodes {
				secret := d.Str(paths[i], item)
				if !sluicev1.IsEnvName(secret) {
					d.Errorf(item, paths[i], "invalid secret name %q: name an environment variable of the worker (letters, digits, '_')", secret)
				}
				s.Secrets = append(s.Secrets, secret)
			}
		}},
		{Name: "shards", Fn: func(path string, _, v *yaml.Node) { s.Shards = d.int32(path, v, 1, MaxShards) }},
		{Name: "retries", Fn: func(path string, _, v *yaml.Node) { s.Retries = d.int32(path, v, 0, MaxRetries) }},
		{Name: "timeout", Fn: func(path string, _, v *yaml.Node) { s.Timeout = d.durationUpTo(path, v, false, MaxTimeout) }},
		{Name: "retry_backoff", Fn: func(path string, _, v *yaml.Node) { s.RetryBackoff = d.durationUpTo(path, v, true, MaxRetryBackoff) }},
		{Name: "when", Fn: func(path string, _, v *yaml.Node) {
			s.When = &sluicev1.When{}
			d.Fields(v, path, "when", []field{
				{Name: "branch", Fn: func(path string, _, v *yaml.Node) { s.When.Branch = d.Strs(path, v) }},
			})
		}},
		{Name: "approval", Fn: func(path string, _, v *yaml.Node) { d.approval(path, v, s) }},
		{Name: "concurrency", Fn: func(path string, _, v *yaml.Node) {
			s.Concurrency = &sluicev1.Concurrency{}
			d.Fields(v, path, "concurrency", []field{
				{Name: "group", Fn: func(path string, _, v *yaml.Node) { s.Concurrency.Group = d.token(path, v, "concurrency group") }},
			})
			if s.Concurrency.Group == "" {
				d.Errorf(resolve(v), path, "group is required: name the environment to serialise on, e.g. `{group: prod}`")
			}
		}},
		{Name: "pool", Fn: func(path string, _, v *yaml.Node) { s.Pool = d.pool(path, v) }},
		{Name: "governance", Fn: block(func(path string, v *yaml.Node) { s.Governance = d.governance(path, v) })},
		{Name: "warnings", Fn: func(path string, k, v *yaml.Node) {
			warningsKey = k
			block(func(path string, v *yaml.Node) { s.Warnings = d.warnings(path, v) })(path, k, v)
		}},
		{Name: "contract", Fn: block(func(path string, v *yaml.Node) { s.Contract = d.contract(path, v) })},
		{Name: "backup_verify", Fn: block(func(path string, v *yaml.Node) { s.BackupVerify = d.backupVerify(path, v) })},
		{Name: "e2e", Fn: block(func(path string, v *yaml.Node) { s.E2E = d.e2e(path, v) })},
		{Name: "load", Fn: block(func(path string, v *yaml.Node) { s.Load = d.load(path, v) })},
		{Name: "rollout", Fn: block(func(path string, v *yaml.Node) { s.Rollout = d.rollout(path, v) })},
	})

	var kinds []string
	for _, k := range sluicev1.AllKinds() {
		kinds = append(kinds, k.Slug())
	}
	if !kindSet {
		d.Errorf(key, path, "kind is required: add `kind:` with one of %s", strings.Join(kinds, ", "))
	}
	known := s.Kind != sluicev1.StageKind_STAGE_KIND_UNSPECIFIED
	for _, k := range blocks {
		for _, b := range kindBlocks {
			if b.field == k.Value && known && b.kind != s.Kind {
				d.Errorf(k, join(path, k.Value), "a %s block belongs to kind %s stages, but this stage is kind %s: change the kind or remove the block", k.Value, b.kind.Slug(), s.Kind.Slug())
			}
		}
	}
	if warningsKey != nil && len(s.Run) == 0 {
		d.Errorf(warningsKey, join(path, "warnings"), "a warnings block counts what run: steps print, but this stage has none: add the linters, e.g. `run: [\"go vet ./...\"]`")
	}
	if known && len(s.Run) == 0 && len(blocks) == 0 {
		todo := "add run: steps"
		if b := blockOf(s.Kind); b != "" {
			todo += " or a " + b + ": block"
		}
		d.Errorf(key, path, "stage has nothing to do: %s", todo)
	}
	return s, needs
}
