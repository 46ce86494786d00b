package spec

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/sluice-ci/sluice/internal/golden"
	sluicev1 "github.com/sluice-ci/sluice/proto/sluice/v1"
)

func noEnv(string) (string, bool) { return "", false }

func parseTestdata(t *testing.T, file string) *sluicev1.PipelineSpec {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	p, err := Parse(file, data, nil, noEnv)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return p
}

func eq(t *testing.T, what string, got, want any) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s = %#v, want %#v", what, got, want)
	}
}

func stageByName(t *testing.T, p *sluicev1.PipelineSpec, name string) *sluicev1.StageSpec {
	t.Helper()
	for _, s := range p.Stages {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("no stage %q", name)
	return nil
}

func TestValid(t *testing.T) {
	tests := []struct {
		file  string
		check func(t *testing.T, p *sluicev1.PipelineSpec)
	}{
		{"web-app.yaml", func(t *testing.T, p *sluicev1.PipelineSpec) {
			eq(t, "name", p.Name, "web-app")
			eq(t, "version", p.Version, int32(1))
			eq(t, "env", p.Env, map[string]string{"STAGING_URL": "http://127.0.0.1:18081"})
			lint := stageByName(t, p, "lint")
			eq(t, "lint defaults", []any{lint.Kind, lint.Shards, lint.Retries, lint.Timeout.AsDuration(), lint.RetryBackoff.AsDuration(), lint.Pool, lint.Line},
				[]any{sluicev1.StageKind_STAGE_KIND_STATIC, int32(1), int32(0), 30 * time.Minute, time.Second, "default", int32(5)})
			eq(t, "lint warnings", []any{lint.Warnings.Formats, lint.Warnings.MaxWarnings}, []any{[]string{"go-vet"}, int32(0)})
			test := stageByName(t, p, "test")
			eq(t, "test", []any{test.Needs, test.Shards, test.Retries, test.Timeout.AsDuration(), test.Run, test.Line},
				[]any{[]string{"lint"}, int32(4), int32(1), 10 * time.Minute, []string{"go test ./... -json"}, int32(7)})
			eq(t, "governance packs", stageByName(t, p, "governance").Governance.Packs, []string{"secrets", "ai-markers", "supabase", "migrations"})
			eq(t, "contract target", stageByName(t, p, "contract").Contract.Target, "http://127.0.0.1:18081")
			eq(t, "backup dsn_env", stageByName(t, p, "backup").BackupVerify.DsnEnv, "DATABASE_URL")
			eq(t, "e2e base_url", stageByName(t, p, "e2e").E2E.BaseUrl, "http://127.0.0.1:18081")
			load := stageByName(t, p, "load").Load
			eq(t, "load", []any{load.Vus, load.Duration.AsDuration(), load.Thresholds["http_req_failed"].Expressions},
				[]any{int32(10), time.Minute, []string{"rate<0.01"}})
			prod := stageByName(t, p, "production")
			eq(t, "production", []any{prod.Kind, prod.Needs, prod.When.Branch, prod.Approval, prod.Concurrency.Group, prod.Line},
				[]any{sluicev1.StageKind_STAGE_KIND_TRAFFIC_SHIFT, []string{"backup", "contract", "e2e", "load"}, []string{"main"}, "required", "prod", int32(13)})
			r := prod.Rollout
			var weights []int32
			for _, s := range r.Steps {
				weights = append(weights, s.Weight)
			}
			eq(t, "weights", weights, []int32{10, 50, 100})
			eq(t, "rollout", []any{r.Router.Type, r.Router.Canary, r.Steps[0].Pause.AsDuration(), r.Deploy.Health.Timeout.AsDuration(), r.OnFailure},
				[]any{"nginx", "green", 5 * time.Minute, time.Minute, "rollback"})
			a := r.Analysis
			eq(t, "analysis", []any{a.Interval.AsDuration(), a.Provider.Type, a.Judge.Type, a.Judge.Confidence, a.Judge.MinSamples, *a.Metrics[0].MaxRatioToBaseline, *a.Metrics[2].Max, a.Metrics[2].Min == nil},
				[]any{30 * time.Second, "prometheus", "mann-whitney", 0.98, int32(50), 1.5, 0.01, true})
		}},
		{"seven-stage.yaml", func(t *testing.T, p *sluicev1.PipelineSpec) {
			var names []string
			for _, s := range p.Stages {
				names = append(names, s.Name)
			}
			eq(t, "stages in file order", names, []string{"lint", "typecheck", "test", "governance", "backup", "e2e", "deploy-gate"})
			eq(t, "lint run (single string)", stageByName(t, p, "lint").Run, []string{"npx eslint . --max-warnings 0"})
			test := stageByName(t, p, "test")
			eq(t, "test", []any{test.Needs, test.Shards, test.Env, test.Run},
				[]any{[]string{"lint", "typecheck"}, int32(2), map[string]string{"CI": "true"},
					[]string{"npx vitest run --shard=$((SLUICE_SHARD_INDEX+1))/${SLUICE_SHARD_COUNT}"}})
			e2e := stageByName(t, p, "e2e")
			eq(t, "e2e", []any{e2e.Pool, e2e.Retries, e2e.RetryBackoff.AsDuration(), e2e.E2E.Journeys},
				[]any{"browsers", int32(2), 5 * time.Second, []string{"e2e/login.yaml", "e2e/checkout.yaml"}})
			b := stageByName(t, p, "backup")
			eq(t, "backup", []any{b.Secrets, b.BackupVerify.Restore, b.BackupVerify.MinRows, b.BackupVerify.MaxDropPct},
				[]any{[]string{"DATABASE_URL"}, true, int64(1), 5.0})
			gate := stageByName(t, p, "deploy-gate")
			eq(t, "deploy-gate", []any{gate.Needs, gate.When.Branch, gate.Approval, gate.Run},
				[]any{[]string{"backup", "e2e"}, []string{"main"}, "required", []string{`echo "${NODE_ENV} gate for test"`}})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			file := filepath.Join("testdata", "valid", tt.file)
			p := parseTestdata(t, file)
			tt.check(t, p)
			// The whole spec, as protojson re-indented for a stable golden.
			raw, err := protojson.Marshal(p)
			if err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			if err := json.Indent(&out, raw, "", "  "); err != nil {
				t.Fatal(err)
			}
			out.WriteByte('\n')
			golden.Check(t, strings.TrimSuffix(file, ".yaml")+".json", out.Bytes())
		})
	}
}

// want markers: a line ending in "# want" expects one problem on it, "# want N" N problems.
var wantMarker = regexp.MustCompile(`#\s*want(?:\s+(\d+))?\s*$`)

func TestInvalid(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "invalid", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 20 {
		t.Fatalf("only %d invalid pipelines under testdata/invalid", len(files))
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			p, err := Parse(file, data, nil, noEnv)
			if err == nil {
				t.Fatalf("parsed without error: %v", p)
			}
			text := err.Error() + "\n"
			golden.Check(t, strings.TrimSuffix(file, ".yaml")+".golden", []byte(text))

			problems := List(err)
			if n := strings.Count(text, "\n"); n != len(problems) {
				t.Errorf("%d lines for %d problems:\n%s", n, len(problems), text)
			}
			gotLines := map[int]int{}
			for _, e := range problems {
				if !strings.HasPrefix(e.Error(), file+":"+strconv.Itoa(e.Line)+":") {
					t.Errorf("problem does not start with %s:%d: %q", file, e.Line, e.Error())
				}
				gotLines[e.Line]++
			}
			wantLines := map[int]int{}
			for i, line := range strings.Split(string(data), "\n") {
				if m := wantMarker.FindStringSubmatch(line); m != nil {
					n, _ := strconv.Atoi(m[1])
					wantLines[i+1] += max(n, 1)
				}
			}
			if !maps.Equal(gotLines, wantLines) {
				t.Errorf("problems per line = %v, want %v (the # want markers):\n%s", gotLines, wantLines, text)
			}
		})
	}
}

func TestNotAPipeline(t *testing.T) {
	for data, want := range map[string]string{
		"":                   "p.yaml:1:1: empty pipeline file",
		"# only a comment\n": "p.yaml:1:1: empty pipeline file",
		"~\n":                `p.yaml:1:1: a pipeline file is a mapping with version, name and stages, got "~"`,
		"- lint\n":           "p.yaml:1:1: a pipeline file is a mapping with version, name and stages, got a list",
	} {
		_, err := Parse("p.yaml", []byte(data), nil, noEnv)
		if err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("Parse(%q) = %v, want %s...", data, err, want)
		}
	}
}

func TestAliasBomb(t *testing.T) {
	// 1,000 keys used 1,000 times: a million values from a 12 KB file.
	var b strings.Builder
	b.WriteString("version: 1\nname: p\nx: &m {")
	for i := range 1000 {
		fmt.Fprintf(&b, "k%d: 1, ", i)
	}
	b.WriteString("}\nstages:\n  s: {kind: traffic-shift, rollout: {analysis: {metrics: [")
	b.WriteString(strings.Repeat("*m, ", 1000))
	b.WriteString("]}}}\n")
	_, err := Parse("p.yaml", []byte(b.String()), nil, noEnv)
	if err == nil || !strings.HasPrefix(err.Error(), "p.yaml:1:1: pipeline file too large:") {
		t.Fatalf("err = %v, want pipeline too large", err)
	}
}

func TestParseFile(t *testing.T) {
	p, err := ParseFile(filepath.Join("testdata", "valid", "web-app.yaml"), map[string]string{"STAGING_URL": "http://staging"})
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "target", stageByName(t, p, "contract").Contract.Target, "http://staging")
	if _, err := ParseFile(filepath.Join("testdata", "missing.yaml"), nil); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v, want a not-exist error", err)
	}
}

func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*", "*.yaml"))
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Parse("fuzz.yaml", data, nil, noEnv)
		if err == nil {
			if _, err := TopoOrder(p); err != nil {
				t.Fatalf("valid pipeline has no order: %v", err)
			}
			return
		}
		for _, e := range List(err) {
			if strings.Contains(e.Error(), "\n") {
				t.Fatalf("multi-line problem: %q", e.Error())
			}
		}
	})
}

func BenchmarkParse(b *testing.B) {
	data, err := os.ReadFile(filepath.Join("testdata", "valid", "web-app.yaml"))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := Parse("web-app.yaml", data, nil, noEnv); err != nil {
			b.Fatal(err)
		}
	}
}

func TestLoadStages(t *testing.T) {
	p, err := Parse("p.yaml", []byte(`version: 1
name: load
stages:
  load:
    kind: load
    load:
      script: loadtest/api.js
      stages: [{duration: 10s, target: 20}, {duration: 5s, target: 0}]
`), nil, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	got := p.GetStages()[0].GetLoad().GetStages()
	if len(got) != 2 || got[0].GetDuration().AsDuration() != 10*time.Second || got[0].GetTarget() != 20 || got[1].GetTarget() != 0 {
		t.Fatalf("stages %v", got)
	}
}
