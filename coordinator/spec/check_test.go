package spec

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/durationpb"

	sluicev1 "github.com/sluice-ci/sluice/proto/sluice/v1"
)

// withoutPositions clears what only a file has: the file name and the stage lines.
func withoutPositions(p *sluicev1.PipelineSpec) *sluicev1.PipelineSpec {
	p = proto.Clone(p).(*sluicev1.PipelineSpec)
	p.File = ""
	for _, s := range p.GetStages() {
		s.Line = 0
	}
	return p
}

func TestCheckRoundTripsEveryValidPipeline(t *testing.T) {
	files, _ := filepath.Glob("testdata/valid/*.yaml")
	files = append(files, "../../examples/pipeline.yaml", "../../examples/hello/pipeline.yaml")
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			vars := map[string]string{"STAGING_URL": "http://127.0.0.1:1", "ROUTER_ADMIN": "127.0.0.1:2", "CANARY_URL": "http://127.0.0.1:3"}
			home := func(k string) (string, bool) { return "/home/ci", k == "HOME" }
			p, err := Parse(file, data, vars, home)
			if err != nil {
				t.Fatal(err)
			}
			got, err := Check(p)
			if err != nil {
				t.Fatalf("Check of a parsed pipeline: %v", err)
			}
			if !proto.Equal(withoutPositions(got), withoutPositions(p)) {
				t.Fatalf("round trip changed the spec:\n got %v\nwant %v", got, p)
			}
			if got.GetFile() != p.GetFile() || got.GetStages()[0].GetLine() != p.GetStages()[0].GetLine() {
				t.Fatalf("file %q line %d, want the submitted %q line %d", got.GetFile(), got.GetStages()[0].GetLine(), p.GetFile(), p.GetStages()[0].GetLine())
			}
		})
	}
}

// everything sets every field of every message in a pipeline, so that a field added to the
// proto without a place in Render fails the test below.
func everything() *sluicev1.PipelineSpec {
	d := durationpb.New
	f := proto.Float64
	return &sluicev1.PipelineSpec{
		Version: 1, Name: "all", File: "all.yaml", Env: map[string]string{"A": "literal ${NOT_A_VAR} value"},
		Stages: []*sluicev1.StageSpec{
			{Name: "base", Kind: sluicev1.StageKind_STAGE_KIND_STATIC, Run: []string{"echo ${SLUICE_SHARD_INDEX}"}, Line: 3,
				Pool: "default", Shards: 1, Timeout: d(time.Minute), RetryBackoff: d(time.Second),
				Governance: &sluicev1.GovernanceSpec{Packs: []string{"secrets"}, Rules: "r.yaml", Baseline: "b.json", FailOn: "high"},
				Warnings:   &sluicev1.WarningsSpec{Formats: []string{"go-vet", "eslint-unix"}, Patterns: []string{`^(?P<message>WARN .+)$`}, MaxWarnings: 3}},
			{Name: "test", Kind: sluicev1.StageKind_STAGE_KIND_TEST, Needs: []string{"base"}, Run: []string{"go test ./..."},
				Env: map[string]string{"B": "b"}, Secrets: []string{"TOKEN"}, Shards: 4, Retries: 2, Timeout: d(10 * time.Minute),
				RetryBackoff: d(5 * time.Second), When: &sluicev1.When{Branch: []string{"main", "release/*"}}, Pool: "gpu",
				Approval: "required", ApprovalBy: []string{"release-managers", "approver:alice"}, Concurrency: &sluicev1.Concurrency{Group: "prod"}, Line: 5},
			{Name: "contract", Kind: sluicev1.StageKind_STAGE_KIND_CONTRACT, Pool: "default", Shards: 1, Timeout: d(time.Minute), RetryBackoff: d(time.Second),
				Contract: &sluicev1.ContractSpec{Target: "http://x", Files: []string{"c/*.yaml"}}},
			{Name: "backup", Kind: sluicev1.StageKind_STAGE_KIND_BACKUP_VERIFY, Pool: "default", Shards: 1, Timeout: d(time.Minute), RetryBackoff: d(time.Second),
				BackupVerify: &sluicev1.BackupVerifySpec{DsnEnv: "DATABASE_URL", Baseline: "b.json", Dump: "d.dump", Restore: true, MinRows: 10, MaxDropPct: 2.5}},
			{Name: "e2e", Kind: sluicev1.StageKind_STAGE_KIND_E2E, Pool: "default", Shards: 1, Timeout: d(time.Minute), RetryBackoff: d(time.Second),
				E2E: &sluicev1.E2ESpec{BaseUrl: "http://x", Journeys: []string{"j/*.yaml"}}},
			{Name: "load", Kind: sluicev1.StageKind_STAGE_KIND_LOAD, Pool: "default", Shards: 1, Timeout: d(time.Minute), RetryBackoff: d(time.Second),
				Load: &sluicev1.LoadSpec{Script: "l.js", Target: "http://x", Stages: []*sluicev1.LoadStage{{Duration: d(time.Second), Target: 5}},
					Thresholds: map[string]*sluicev1.ThresholdList{"http_req_failed": {Expressions: []string{"rate<0.01"}}}}},
			{Name: "load2", Kind: sluicev1.StageKind_STAGE_KIND_LOAD, Pool: "default", Shards: 1, Timeout: d(time.Minute), RetryBackoff: d(time.Second),
				Load: &sluicev1.LoadSpec{Script: "l.js", Vus: 3, Duration: d(time.Second)}},
			{Name: "prod", Kind: sluicev1.StageKind_STAGE_KIND_TRAFFIC_SHIFT, Pool: "default", Shards: 1, Timeout: d(time.Minute), RetryBackoff: d(time.Second),
				Rollout: &sluicev1.RolloutSpec{
					Router: &sluicev1.RouterSpec{Type: "haproxy", Config: "c", Upstream: "u", Stable: "s", Canary: "c", Admin: "a", Socket: "/s", Backend: "b"},
					Deploy: &sluicev1.DeploySpec{Run: []string{"./deploy.sh"}, Health: &sluicev1.HealthCheck{Url: "http://h", Timeout: d(time.Minute)}},
					Steps:  []*sluicev1.RolloutStep{{Weight: 0, Pause: d(time.Second), Approval: true}, {Weight: 100}},
					Analysis: &sluicev1.AnalysisSpec{Interval: d(time.Second), FailureLimit: 2,
						Provider: &sluicev1.ProviderSpec{Type: "prometheus", Url: "http://p", Queries: map[string]string{"q": "rate(x[1m])"}},
						Metrics:  []*sluicev1.MetricSpec{{Name: "error_rate", Max: f(0.1), Min: f(0), MaxRatioToBaseline: f(1.5), Query: "q"}},
						Judge:    &sluicev1.JudgeSpec{Type: "mann-whitney", Confidence: 0.98, MinSamples: 50, MaxEffectSize: 0.3}},
					OnFailure: "freeze"}},
		},
	}
}

// unset lists the fields of m (and of the messages it holds) that no value in it sets.
func unset(m protoreflect.Message, path string, out map[string]bool) {
	fields := m.Descriptor().Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		name := path + "." + string(fd.Name())
		if !m.Has(fd) {
			if _, seen := out[name]; !seen {
				out[name] = true
			}
			continue
		}
		out[name] = false
		switch {
		case fd.IsList() && fd.Message() != nil:
			for j := range m.Get(fd).List().Len() {
				unset(m.Get(fd).List().Get(j).Message(), name, out)
			}
		case fd.IsMap() && fd.MapValue().Message() != nil:
			m.Get(fd).Map().Range(func(_ protoreflect.MapKey, v protoreflect.Value) bool {
				unset(v.Message(), name, out)
				return true
			})
		case fd.Message() != nil && !fd.IsMap() && fd.Message().FullName() != "google.protobuf.Duration":
			unset(m.Get(fd).Message(), name, out)
		}
	}
}

func TestCheckRendersEveryField(t *testing.T) {
	p := everything()
	missing := map[string]bool{}
	unset(p.ProtoReflect(), "PipelineSpec", missing)
	for name, isUnset := range missing {
		// A weight of 0 is a valid step; proto3 cannot tell it from unset.
		if isUnset && name != "PipelineSpec.stages.rollout.steps.weight" && name != "PipelineSpec.stages.rollout.steps.approval" && name != "PipelineSpec.stages.rollout.steps.pause" {
			t.Errorf("the fixture sets no %s: add it to everything() and to Render", name)
		}
	}
	got, err := Check(p)
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	if !proto.Equal(withoutPositions(got), withoutPositions(p)) {
		t.Fatalf("round trip lost a field:\n got %v\nwant %v", got, p)
	}
	if v := got.GetEnv()["A"]; v != "literal ${NOT_A_VAR} value" {
		t.Fatalf("a literal ${...} in a value came back as %q: nothing may be substituted twice", v)
	}
}

// TestCheckRefusesWhatLintRefuses submits protobuf specs that break each limit and expects
// the message `sluice lint` gives for the same pipeline written as a file.
func TestCheckRefusesWhatLintRefuses(t *testing.T) {
	base := func() *sluicev1.PipelineSpec {
		p, err := Parse("p.yaml", []byte("version: 1\nname: web\nstages:\n  a: {kind: static, run: [\"true\"]}\n  b: {kind: test, needs: [a], run: [\"true\"]}\n"), nil, noEnv)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	many := func(n int) string {
		var b strings.Builder
		b.WriteString("version: 1\nname: web\nstages:\n")
		for i := range n {
			b.WriteString("  s" + strings.Repeat("x", 0) + strconv.Itoa(i) + ": {kind: static, run: [\"true\"]}\n")
		}
		return b.String()
	}
	tests := []struct {
		name   string
		mutate func(*sluicev1.PipelineSpec)
		yaml   string
	}{
		{"shards", func(p *sluicev1.PipelineSpec) { p.Stages[1].Shards = 100000 },
			"version: 1\nname: web\nstages:\n  a: {kind: static, run: [\"true\"]}\n  b: {kind: test, needs: [a], run: [\"true\"], shards: 100000}\n"},
		{"retries", func(p *sluicev1.PipelineSpec) { p.Stages[1].Retries = 1000000 },
			"version: 1\nname: web\nstages:\n  a: {kind: static, run: [\"true\"]}\n  b: {kind: test, needs: [a], run: [\"true\"], retries: 1000000}\n"},
		{"wildcard pool", func(p *sluicev1.PipelineSpec) { p.Stages[0].Pool = "*" },
			"version: 1\nname: web\nstages:\n  a: {kind: static, run: [\"true\"], pool: \"*\"}\n  b: {kind: test, needs: [a], run: [\"true\"]}\n"},
		{"timeout", func(p *sluicev1.PipelineSpec) { p.Stages[0].Timeout = durationpb.New(1000 * time.Hour) },
			"version: 1\nname: web\nstages:\n  a: {kind: static, run: [\"true\"], timeout: 1000h0m0s}\n  b: {kind: test, needs: [a], run: [\"true\"]}\n"},
		{"negative backoff", func(p *sluicev1.PipelineSpec) { p.Stages[0].RetryBackoff = durationpb.New(-time.Second) },
			"version: 1\nname: web\nstages:\n  a: {kind: static, run: [\"true\"], retry_backoff: -1s}\n  b: {kind: test, needs: [a], run: [\"true\"]}\n"},
		{"subject in a stage name", func(p *sluicev1.PipelineSpec) { p.Stages[0].Name = "a.>"; p.Stages[1].Needs = []string{"a.>"} },
			"version: 1\nname: web\nstages:\n  \"a.>\": {kind: static, run: [\"true\"]}\n  b: {kind: test, needs: [\"a.>\"], run: [\"true\"]}\n"},
		{"duplicate stage", func(p *sluicev1.PipelineSpec) { p.Stages[1].Name = "a"; p.Stages[1].Needs = nil },
			"version: 1\nname: web\nstages:\n  a: {kind: static, run: [\"true\"]}\n  a: {kind: test, run: [\"true\"]}\n"},
		{"cycle", func(p *sluicev1.PipelineSpec) { p.Stages[0].Needs = []string{"b"} },
			"version: 1\nname: web\nstages:\n  a: {kind: static, needs: [b], run: [\"true\"]}\n  b: {kind: test, needs: [a], run: [\"true\"]}\n"},
		{"unknown kind", func(p *sluicev1.PipelineSpec) { p.Stages[0].Kind = 99 },
			"version: 1\nname: web\nstages:\n  a: {kind: unspecified, run: [\"true\"]}\n  b: {kind: test, needs: [a], run: [\"true\"]}\n"},
		{"too many stages", func(p *sluicev1.PipelineSpec) {
			p.Stages = nil
			for i := range 5000 {
				p.Stages = append(p.Stages, &sluicev1.StageSpec{Name: "s" + strconv.Itoa(i), Kind: sluicev1.StageKind_STAGE_KIND_STATIC, Run: []string{"true"}})
			}
		}, many(5000)},
		{"weight out of range", func(p *sluicev1.PipelineSpec) {
			p.Stages[1].Kind = sluicev1.StageKind_STAGE_KIND_TRAFFIC_SHIFT
			p.Stages[1].Rollout = &sluicev1.RolloutSpec{Router: &sluicev1.RouterSpec{Type: "builtin"}, Steps: []*sluicev1.RolloutStep{{Weight: 150}}}
		}, "version: 1\nname: web\nstages:\n  a: {kind: static, run: [\"true\"]}\n  b: {kind: traffic-shift, needs: [a], run: [\"true\"], rollout: {router: {type: builtin}, steps: [{weight: 150}], on_failure: rollback}}\n"},
		{"router without what it needs", func(p *sluicev1.PipelineSpec) {
			p.Stages[1].Kind = sluicev1.StageKind_STAGE_KIND_TRAFFIC_SHIFT
			p.Stages[1].Rollout = &sluicev1.RolloutSpec{Router: &sluicev1.RouterSpec{Type: "haproxy", Socket: "/run/haproxy.sock"}, Steps: []*sluicev1.RolloutStep{{Weight: 100}}}
		}, "version: 1\nname: web\nstages:\n  a: {kind: static, run: [\"true\"]}\n  b: {kind: traffic-shift, needs: [a], run: [\"true\"], rollout: {router: {type: haproxy, socket: /run/haproxy.sock}, steps: [{weight: 100}], on_failure: rollback}}\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := base()
			tt.mutate(p)
			_, err := Check(p)
			if err == nil {
				t.Fatal("Check accepted the spec")
			}
			_, lintErr := Parse("p.yaml", []byte(tt.yaml), nil, noEnv)
			if lintErr == nil {
				t.Fatal("the pipeline file is valid: fix the test")
			}
			if got, want := messages(err), messages(lintErr); got != want {
				t.Fatalf("protobuf submission refused with\n%s\nlint says\n%s", got, want)
			}
		})
	}
}

var lineRef = regexp.MustCompile(` \(first defined at line \d+\)`)

// messages is every problem as "FIELD: MSG", without positions (a rendered spec has no
// lines worth naming).
func messages(err error) string {
	var lines []string
	for _, e := range List(err) {
		lines = append(lines, e.Field+": "+lineRef.ReplaceAllString(e.Msg, ""))
	}
	return strings.Join(lines, "\n")
}
