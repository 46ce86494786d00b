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
	"io"
	"math"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"gopkg.in/yaml.v3"

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
	root, err := parseYAML(file, data)
	if err != nil {
		return nil, err
	}
	if lookupEnv == nil {
		lookupEnv = func(string) (string, bool) { return "", false }
	}
	d := &decoder{file: file}
	p := &sluicev1.PipelineSpec{File: file}

	// The env: block goes first, wherever it is in the file: every other value may use it.
	d.lookup = func(name string) (string, bool) {
		if v, ok := vars[name]; ok {
			return v, true
		}
		return lookupEnv(name)
	}
	if n := valueOf(root, "env"); n != nil {
		p.Env = d.stringMap("env", n, sluicev1.IsEnvName, "use letters, digits and '_', not starting with a digit")
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
	d.fields(root, "", "pipeline", []field{
		{"version", func(path string, _, v *yaml.Node) {
			versionSet = true
			n, ok := d.integer(path, v, 0, math.MaxInt32)
			if ok && n != Version {
				d.errorf(resolve(v), path, "unsupported version %d: this Sluice reads version %d", n, Version)
			}
			p.Version = int32(n)
		}},
		{"name", func(path string, _, v *yaml.Node) {
			nameSet = true
			p.Name = d.token(path, v, "pipeline name")
		}},
		{"env", func(string, *yaml.Node, *yaml.Node) {}},
		{"stages", func(path string, k, v *yaml.Node) {
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
			d.errorf(root, req.name, "missing: %s", req.todo)
		}
	}
	d.checkNeeds(graph)
	if err := d.errs.asError(); err != nil {
		return nil, err
	}
	return p, nil
}

// yamlLine extracts the line yaml.v3 puts in its syntax errors ("yaml: line 3: ...").
var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// parseYAML decodes exactly one YAML document into a node tree.
func parseYAML(file string, data []byte) (*yaml.Node, error) {
	dec := yaml.NewDecoder(strings.NewReader(string(data)))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if err == io.EOF {
			return nil, &Error{File: file, Line: 1, Column: 1, Msg: "empty pipeline file: it needs version, name and stages"}
		}
		return nil, yamlError(file, err)
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case err == io.EOF:
	case err != nil:
		return nil, yamlError(file, err)
	default:
		return nil, &Error{File: file, Line: extra.Line, Column: extra.Column, Msg: "a pipeline file holds one YAML document: remove the second one (after ---)"}
	}
	if len(doc.Content) == 0 {
		return nil, &Error{File: file, Line: 1, Column: 1, Msg: "empty pipeline file: it needs version, name and stages"}
	}
	root := resolve(doc.Content[0])
	if size := expandedSize(root, map[*yaml.Node]int{}); size > MaxNodes {
		return nil, &Error{File: file, Line: root.Line, Column: root.Column,
			Msg: fmt.Sprintf("pipeline too large: %d YAML values once anchors are expanded, the limit is %d", size, MaxNodes)}
	}
	if root.Kind != yaml.MappingNode {
		return nil, &Error{File: file, Line: root.Line, Column: root.Column,
			Msg: fmt.Sprintf("a pipeline file is a mapping with version, name and stages, got %s", describe(root))}
	}
	return root, nil
}

func yamlError(file string, err error) *Error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	e := &Error{File: file}
	if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
		e.Line, _ = strconv.Atoi(m[1])
		msg = m[2]
	}
	e.Msg = "invalid YAML: " + strings.ReplaceAll(msg, "\n", " ")
	return e
}

// expandedSize counts the nodes of n with every alias expanded, as the decoder will walk
// them, so that a few anchors cannot make it walk (and report on) billions of values. Each
// anchored node is counted once; yaml.v3 already rejects an anchor that contains itself.
func expandedSize(n *yaml.Node, memo map[*yaml.Node]int) int {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if size, ok := memo[n]; ok {
		return size
	}
	size := 1
	for _, c := range n.Content {
		size += expandedSize(c, memo)
		if size > MaxNodes {
			break
		}
	}
	memo[n] = size
	return size
}

// valueOf returns the value of key in mapping n, or nil.
func valueOf(n *yaml.Node, key string) *yaml.Node {
	n = resolve(n)
	if n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if k := resolve(n.Content[i]); k.Kind == yaml.ScalarNode && k.Value == key {
			return n.Content[i+1]
		}
	}
	return nil
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
	ok := d.pairs(n, path, func(name string, k, v *yaml.Node) {
		spath := join(path, name)
		if !isToken(name) {
			d.errorf(k, spath, "invalid stage name %q: use only letters, digits, '-' and '_' (it becomes a NATS subject token)", name)
		}
		s, needs := d.stage(spath, name, k, v)
		stages = append(stages, s)
		graph = append(graph, stageNodes{stage: s, key: k, needs: needs})
	})
	if ok && len(stages) == 0 && len(resolve(n).Content) == 0 {
		d.errorf(key, path, "no stages: add at least one, e.g. `lint: {kind: static, run: [\"go vet ./...\"]}`")
	}
	if len(stages) > MaxStages {
		d.errorf(key, path, "%d stages, the limit is %d: split the pipeline", len(stages), MaxStages)
	}
	return stages, graph
}

// kindBlocks are the stage fields that configure one kind's engine.
var kindBlocks = []struct {
	field string
	kind  sluicev1.StageKind
}{
	{"governance", sluicev1.StageKind_STAGE_KIND_STATIC},
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
		needs   []*yaml.Node
		kindSet bool
		blocks  []*yaml.Node // keys of the kind blocks present
	)
	block := func(decode func(path string, v *yaml.Node)) func(string, *yaml.Node, *yaml.Node) {
		return func(path string, k, v *yaml.Node) {
			blocks = append(blocks, k)
			decode(path, v)
		}
	}
	d.fields(n, path, "stage", []field{
		{"kind", func(path string, _, v *yaml.Node) {
			kindSet = true
			slug, ok := d.scalar(v, path)
			if !ok {
				return
			}
			kind, err := sluicev1.ParseStageKind(slug)
			if err != nil {
				d.errorf(resolve(v), path, "%v", err)
			}
			s.Kind = kind
		}},
		{"needs", func(path string, _, v *yaml.Node) {
			nodes, paths := d.items(path, v)
			for i, item := range nodes {
				s.Needs = append(s.Needs, d.str(paths[i], item))
				needs = append(needs, item)
			}
		}},
		{"run", func(path string, _, v *yaml.Node) { s.Run = d.commands(path, v) }},
		{"env", func(path string, _, v *yaml.Node) {
			s.Env = d.stringMap(path, v, sluicev1.IsEnvName, "use letters, digits and '_', not starting with a digit")
		}},
		{"secrets", func(path string, _, v *yaml.Node) {
			nodes, paths := d.items(path, v)
			for i, item := range nodes {
				secret := d.str(paths[i], item)
				if !sluicev1.IsEnvName(secret) {
					d.errorf(item, paths[i], "invalid secret name %q: name an environment variable of the worker (letters, digits, '_')", secret)
				}
				s.Secrets = append(s.Secrets, secret)
			}
		}},
		{"shards", func(path string, _, v *yaml.Node) { s.Shards = d.int32(path, v, 1, MaxShards) }},
		{"retries", func(path string, _, v *yaml.Node) { s.Retries = d.int32(path, v, 0, MaxRetries) }},
		{"timeout", func(path string, _, v *yaml.Node) { s.Timeout = d.durationUpTo(path, v, false, MaxTimeout) }},
		{"retry_backoff", func(path string, _, v *yaml.Node) { s.RetryBackoff = d.durationUpTo(path, v, true, MaxRetryBackoff) }},
		{"when", func(path string, _, v *yaml.Node) {
			s.When = &sluicev1.When{}
			d.fields(v, path, "when", []field{
				{"branch", func(path string, _, v *yaml.Node) { s.When.Branch = d.strs(path, v) }},
			})
		}},
		{"approval", func(path string, _, v *yaml.Node) { d.approval(path, v, s) }},
		{"concurrency", func(path string, _, v *yaml.Node) {
			s.Concurrency = &sluicev1.Concurrency{}
			d.fields(v, path, "concurrency", []field{
				{"group", func(path string, _, v *yaml.Node) { s.Concurrency.Group = d.token(path, v, "concurrency group") }},
			})
			if s.Concurrency.Group == "" {
				d.errorf(resolve(v), path, "group is required: name the environment to serialise on, e.g. `{group: prod}`")
			}
		}},
		{"pool", func(path string, _, v *yaml.Node) { s.Pool = d.pool(path, v) }},
		{"governance", block(func(path string, v *yaml.Node) { s.Governance = d.governance(path, v) })},
		{"contract", block(func(path string, v *yaml.Node) { s.Contract = d.contract(path, v) })},
		{"backup_verify", block(func(path string, v *yaml.Node) { s.BackupVerify = d.backupVerify(path, v) })},
		{"e2e", block(func(path string, v *yaml.Node) { s.E2E = d.e2e(path, v) })},
		{"load", block(func(path string, v *yaml.Node) { s.Load = d.load(path, v) })},
		{"rollout", block(func(path string, v *yaml.Node) { s.Rollout = d.rollout(path, v) })},
	})

	var kinds []string
	for _, k := range sluicev1.AllKinds() {
		kinds = append(kinds, k.Slug())
	}
	if !kindSet {
		d.errorf(key, path, "kind is required: add `kind:` with one of %s", strings.Join(kinds, ", "))
	}
	known := s.Kind != sluicev1.StageKind_STAGE_KIND_UNSPECIFIED
	for _, k := range blocks {
		for _, b := range kindBlocks {
			if b.field == k.Value && known && b.kind != s.Kind {
				d.errorf(k, join(path, k.Value), "a %s block belongs to kind %s stages, but this stage is kind %s: change the kind or remove the block", k.Value, b.kind.Slug(), s.Kind.Slug())
			}
		}
	}
	if known && len(s.Run) == 0 && len(blocks) == 0 {
		todo := "add run: steps"
		if b := blockOf(s.Kind); b != "" {
			todo += " or a " + b + ": block"
		}
		d.errorf(key, path, "stage has nothing to do: %s", todo)
	}
	return s, needs
}
