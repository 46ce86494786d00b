package exec

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/sluice-ci/sluice/internal/realtest"

	sluicev1 "github.com/sluice-ci/sluice/proto/sluice/v1"
)

func testTask() *sluicev1.Task {
	return &sluicev1.Task{
		RunId: "r1", Pipeline: "web", Stage: "test", Attempt: 2, ShardIndex: 1, ShardCount: 3,
		Ref: "main",
		Env: map[string]string{"FROM_PIPELINE": "p", "OVERRIDDEN": "pipeline"},
		Spec: &sluicev1.StageSpec{
			Name: "test",
			Env:  map[string]string{"FROM_STAGE": "s", "OVERRIDDEN": "stage", "SLUICE_STAGE": "forged"},
		},
	}
}

// A step sees exactly the documented variables: nothing of the worker's own environment.
func TestTaskEnvIsClean(t *testing.T) {
	t.Setenv("SLUICE_TEST_LEAK", "leaked")
	t.Setenv("DB_PASSWORD", "pa55word")
	task := testTask()
	task.Spec.Secrets = []string{"DB_PASSWORD"}
	task.Traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	home, tmp, cache := t.TempDir(), t.TempDir(), t.TempDir()
	env, secrets, err := TaskEnv(task, EnvConfig{Path: "/usr/bin:/bin", Home: home, TmpDir: tmp, CacheHome: cache, Secrets: map[string]string{"DB_PASSWORD": "pa55word"}})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(secrets, []string{"pa55word"}) {
		t.Errorf("secrets = %q", secrets)
	}

	var out bytes.Buffer
	r := &Runner{Dir: t.TempDir(), Env: env, Stdout: &out}
	if _, err := r.Run(context.Background(), 1, "env"); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for line := range strings.Lines(out.String()) {
		k, v, _ := strings.Cut(strings.TrimSuffix(line, "\n"), "=")
		got[k] = v
	}
	// dash adds PWD itself; it is the step's directory, not the worker's.
	delete(got, "PWD")
	want := map[string]string{
		"PATH": "/usr/bin:/bin", "HOME": home, "TMPDIR": tmp, "LANG": "C.UTF-8", "XDG_CACHE_HOME": cache,
		"GOCACHE": filepath.Join(cache, "go-build"), "GOMODCACHE": filepath.Join(cache, "go-mod"),
		"SLUICE_RUN_ID": "r1", "SLUICE_STAGE": "test", "SLUICE_ATTEMPT": "2",
		"SLUICE_SHARD_INDEX": "1", "SLUICE_SHARD_COUNT": "3", "SLUICE_PIPELINE": "web",
		"SLUICE_REF":    "main",
		"FROM_PIPELINE": "p", "FROM_STAGE": "s", "OVERRIDDEN": "stage",
		"DB_PASSWORD": "pa55word",
		"TRACEPARENT": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("unexpected variable %s=%q in the step's environment", k, got[k])
		}
	}
}

func TestTaskEnvErrors(t *testing.T) {
	granted := map[string]string{"PRESENT": "value"}
	tests := []struct {
		name     string
		secrets  []string
		env      map[string]string
		want     error
		contains []string
	}{
		{"missing secret", []string{"PRESENT", "DB_PASSWORD"}, nil, ErrMissingSecret, []string{"DB_PASSWORD"}},
		{"all missing named", []string{"A_KEY", "B_KEY"}, nil, ErrMissingSecret, []string{"A_KEY, B_KEY"}},
		{"name with =", nil, map[string]string{"A=B": "x"}, ErrBadEnv, []string{`"A=B"`}},
		{"NUL in value", nil, map[string]string{"A": "x\x00y"}, ErrBadEnv, []string{`"A"`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			task := testTask()
			task.Spec.Secrets = tc.secrets
			for k, v := range tc.env {
				task.Spec.Env[k] = v
			}
			_, _, err := TaskEnv(task, EnvConfig{Secrets: granted})
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			for _, s := range tc.contains {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not name %s", err, s)
				}
			}
		})
	}
}

// Two tasks of a worker, each with a HOME of its own, get one Go build cache and one module
// cache, as go itself reads them: a task does not download the modules the last one did.
func TestTaskEnvSharesGoCaches(t *testing.T) {
	gobin := realtest.Binary(t, "go")
	cache := t.TempDir()
	var seen []string
	for i := range 2 {
		task := testTask()
		task.ShardIndex = int32(i)
		// go's telemetry may still write to HOME from a child after go exits, which
		// t.TempDir's cleanup reports as an error.
		home, err := os.MkdirTemp("", "sluice-env-home-")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = os.RemoveAll(home) })
		env, _, err := TaskEnv(task, EnvConfig{Path: filepath.Dir(gobin) + ":/usr/bin:/bin", Home: home, TmpDir: t.TempDir(), CacheHome: cache})
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		r := &Runner{Dir: t.TempDir(), Env: append(env, "GOTOOLCHAIN=local"), Stdout: &out}
		if _, err := r.Run(context.Background(), 1, "go env GOMODCACHE GOCACHE"); err != nil {
			t.Fatal(err)
		}
		seen = append(seen, out.String())
	}
	want := filepath.Join(cache, "go-mod") + "\n" + filepath.Join(cache, "go-build") + "\n"
	for i, got := range seen {
		if got != want {
			t.Errorf("task %d: go env GOMODCACHE GOCACHE = %q, want %q", i+1, got, want)
		}
	}
}
