package spec

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

func TestSubstitution(t *testing.T) {
	process := map[string]string{"A": "process", "B": "process", "C": "process", "HOME": "/home/ci"}
	lookup := func(k string) (string, bool) { v, ok := process[k]; return v, ok }
	tests := []struct {
		name    string
		env     string // the pipeline's env: block
		vars    map[string]string
		target  string // a value outside run:
		run     string // a run: command
		wantEnv map[string]string
		want    string
		wantRun string
	}{
		{name: "--set beats env beats process", env: "{A: env, B: env}", vars: map[string]string{"A": "set"},
			target: "${A} ${B} ${C}", run: "echo ${A} ${B} ${C}",
			wantEnv: map[string]string{"A": "set", "B": "env"},
			want:    "set env process", wantRun: "echo set env ${C}"},
		{name: "$$ is a literal", env: "{A: env}",
			target: "$${A} $$ $A ${A}", run: "echo $${A} $$ ${A}",
			wantEnv: map[string]string{"A": "env"},
			want:    "${A} $$ $A env", wantRun: "echo ${A} $$ env"},
		{name: "run leaves unknown and shell forms for the worker", env: "{}",
			target: "x", run: `echo ${SLUICE_SHARD_INDEX} ${HOME:-/tmp} ${HOME} $((1+1)) ${`,
			wantEnv: map[string]string{},
			want:    "x", wantRun: `echo ${SLUICE_SHARD_INDEX} ${HOME:-/tmp} ${HOME} $((1+1)) ${`},
		{name: "env values use --set and process env, not each other", env: `{U: "${HOST}:${HOME}", V: "$${U}"}`,
			vars: map[string]string{"HOST": "h"}, target: "${U}", run: "${V}",
			wantEnv: map[string]string{"U": "h:/home/ci", "V": "${U}"},
			want:    "h:/home/ci", wantRun: "${U}"},
		{name: "values are not expanded twice", env: "{}",
			vars: map[string]string{"A": "${B}", "Y": "a}\nstages: {}"}, target: "${A}|${Y}", run: "${A}",
			wantEnv: map[string]string{},
			want:    "${B}|a}\nstages: {}", wantRun: "${B}"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := fmt.Sprintf("version: 1\nname: p\nenv: %s\nstages:\n  c: {kind: contract, run: [%q], contract: {target: %q}}\n", tt.env, tt.run, tt.target)
			p, err := Parse("p.yaml", []byte(src), tt.vars, lookup)
			if err != nil {
				t.Fatalf("Parse:\n%s\n%v", src, err)
			}
			eq(t, "env", p.Env, tt.wantEnv)
			eq(t, "target", p.Stages[0].Contract.Target, tt.want)
			eq(t, "run", p.Stages[0].Run, []string{tt.wantRun})
		})
	}
}

func TestSubstitutionErrors(t *testing.T) {
	tests := []struct {
		name, src string
		want      []string
	}{
		{"undefined outside run", "version: 1\nname: p\nstages:\n  c: {kind: contract, contract: {target: \"${URL}/${URL2}\"}}\n",
			[]string{"p.yaml:4:42: stages.c.contract.target: undefined variable ${URL}:", "p.yaml:4:42: stages.c.contract.target: undefined variable ${URL2}:"}},
		{"undefined in env", "version: 1\nname: p\nenv: {U: \"${NOPE}\"}\nstages:\n  c: {kind: static, run: x}\n",
			[]string{"p.yaml:3:10: env.U: undefined variable ${NOPE}:"}},
		{"env does not see itself", "version: 1\nname: p\nenv: {A: a, B: \"${A}\"}\nstages:\n  c: {kind: static, run: x}\n",
			[]string{"p.yaml:3:16: env.B: undefined variable ${A}:"}},
		{"unclosed", "version: 1\nname: p\nstages:\n  c: {kind: static, run: x, pool: \"${POOL\"}\n",
			[]string{`p.yaml:4:35: stages.c.pool: unclosed "${POOL": write ${NAME}`}},
		{"numbers substitute too", "version: 1\nname: p\nstages:\n  c: {kind: test, run: x, shards: \"${N}\"}\n",
			[]string{"p.yaml:4:35: stages.c.shards: undefined variable ${N}:"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("p.yaml", []byte(tt.src), nil, noEnv)
			if err == nil {
				t.Fatal("no error")
			}
			lines := strings.Split(err.Error(), "\n")
			if len(lines) != len(tt.want) || !slices.EqualFunc(lines, tt.want, strings.HasPrefix) {
				t.Errorf("got\n%v\nwant lines starting with\n%s", err, strings.Join(tt.want, "\n"))
			}
		})
	}
	p, err := Parse("p.yaml", []byte("version: 1\nname: p\nstages:\n  c: {kind: test, run: x, shards: \"${N}\"}\n"), map[string]string{"N": "8"}, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "shards from --set", p.Stages[0].Shards, int32(8))
}

func TestExpand(t *testing.T) {
	vars := map[string]string{"A": "1", "B_2": "two"}
	lookup := func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
	tests := []struct {
		in, want string
		strict   bool
		problems int
	}{
		{"plain", "plain", true, 0},
		{"${A}${B_2}", "1two", true, 0},
		{"x$${A}y", "x${A}y", true, 0},
		{"$$${A}", "$${A}", true, 0}, // a plain "$", then the escape "$${"
		{"${C}", "${C}", true, 1},
		{"${C}", "${C}", false, 0},
		{"${1A} ${A-b} ${}", "${1A} ${A-b} ${}", true, 3},
		{"${A", "${A", true, 1},
		{"$A ${A}", "$A 1", false, 0},
	}
	for _, tt := range tests {
		got, problems := expand(tt.in, lookup, tt.strict)
		if got != tt.want || len(problems) != tt.problems {
			t.Errorf("expand(%q, strict=%v) = %q, %q; want %q with %d problems", tt.in, tt.strict, got, problems, tt.want, tt.problems)
		}
	}
}
