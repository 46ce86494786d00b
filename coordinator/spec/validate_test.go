package spec

import (
	"path/filepath"
	"testing"

	sluicev1 "github.com/sluice-ci/sluice/proto/sluice/v1"
)

func pipeline(stages ...*sluicev1.StageSpec) *sluicev1.PipelineSpec {
	for i, s := range stages {
		s.Line = int32(i + 4)
	}
	return &sluicev1.PipelineSpec{File: "p.yaml", Stages: stages}
}

func st(name string, needs ...string) *sluicev1.StageSpec {
	return &sluicev1.StageSpec{Name: name, Needs: needs}
}

func TestTopoOrder(t *testing.T) {
	tests := []struct {
		name    string
		p       *sluicev1.PipelineSpec
		want    []string
		wantErr string
	}{
		{name: "seven-stage file", p: parseTestdata(t, filepath.Join("testdata", "valid", "seven-stage.yaml")),
			want: []string{"lint", "typecheck", "test", "governance", "backup", "e2e", "deploy-gate"}},
		{name: "web-app file", p: parseTestdata(t, filepath.Join("testdata", "valid", "web-app.yaml")),
			want: []string{"lint", "governance", "test", "contract", "backup", "e2e", "load", "production"}},
		{name: "needs come first, then file order", p: pipeline(st("deploy", "build"), st("build"), st("docs")),
			want: []string{"build", "deploy", "docs"}},
		{name: "empty", p: pipeline(), want: []string{}},
		{name: "unknown need", p: pipeline(st("a", "b")),
			wantErr: `p.yaml:4: stages.a.needs: unknown stage "b" (stages: a)`},
		{name: "self", p: pipeline(st("a", "a")),
			wantErr: `p.yaml:4: stages.a.needs: cycle: a -> a: remove one of these needs`},
		{name: "cycle named from its first stage", p: pipeline(st("x"), st("b", "c"), st("a", "b"), st("c", "a")),
			wantErr: `p.yaml:5: stages.b.needs: cycle: b -> c -> a -> b: remove one of these needs`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := TopoOrder(tt.p)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("err = %v, want %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			eq(t, "order", got, tt.want)
		})
	}
}
