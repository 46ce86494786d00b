package workers

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	sluicev1 "github.com/sluice-ci/sluice/proto/sluice/v1"
)

// A worker hands a stage only the secrets its file grants the stage's pipeline and ref;
// production secrets only to protected refs.
func TestSecretsAreGrantedByPipelineAndRef(t *testing.T) {
	env := map[string]string{"PROD_DB": "prod-db-url", "NPM": "npm-token", "SLUICE_CREDS": "/etc/creds"}
	s := &Secrets{
		LookupEnv: func(k string) (string, bool) { v, ok := env[k]; return v, ok },
		Grants: []SecretGrant{
			{Name: "DATABASE_URL", FromEnv: "PROD_DB", Pipelines: []string{"payments"}, Refs: []string{"main", "release/*"}, Protected: true},
			{Name: "NPM_TOKEN", FromEnv: "NPM"},
			{Name: "UNSET"},
			{Name: "CREDS", FromEnv: "SLUICE_CREDS"},
		},
	}
	task := func(pipeline, ref string, protected bool, secrets ...string) *sluicev1.Task {
		return &sluicev1.Task{Pipeline: pipeline, Ref: ref, RefProtected: protected, Spec: &sluicev1.StageSpec{Secrets: secrets}}
	}
	tests := []struct {
		name string
		task *sluicev1.Task
		want map[string]string
		err  string
	}{
		{"granted", task("payments", "main", true, "DATABASE_URL", "NPM_TOKEN"), map[string]string{"DATABASE_URL": "prod-db-url", "NPM_TOKEN": "npm-token"}, ""},
		{"release branch", task("payments", "refs/heads/release/2", true, "DATABASE_URL"), map[string]string{"DATABASE_URL": "prod-db-url"}, ""},
		{"other pipeline", task("shop", "main", true, "DATABASE_URL"), nil, "granted to pipelines [payments], not shop"},
		{"other ref", task("payments", "feature", true, "DATABASE_URL"), nil, "granted to refs [main release/*], not feature"},
		{"unprotected main", task("payments", "main", false, "DATABASE_URL"), nil, "protected refs only"},
		{"ungranted", task("payments", "main", true, "AWS_KEY"), nil, "AWS_KEY (no grant"},
		{"unset", task("payments", "main", true, "UNSET"), nil, "UNSET is not set"},
		{"sluice's own", task("payments", "main", true, "CREDS"), nil, "Sluice's own variables"},
		{"dsn_env asks too", &sluicev1.Task{Pipeline: "x", Spec: &sluicev1.StageSpec{BackupVerify: &sluicev1.BackupVerifySpec{DsnEnv: "AWS_KEY"}}}, nil, "AWS_KEY"},
		{"nothing asked", task("payments", "main", false), nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.Grant(tt.task)
			if tt.err != "" {
				if !errors.Is(err, ErrSecretDenied) || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("Grant = %v, %v; want a denial saying %q", got, err, tt.err)
				}
				return
			}
			if err != nil || len(got) != len(tt.want) {
				t.Fatalf("Grant = %v, %v; want %v", got, err, tt.want)
			}
			for k, v := range tt.want {
				if got[k] != v {
					t.Fatalf("%s = %q, want %q", k, got[k], v)
				}
			}
		})
	}
	if _, err := (*Secrets)(nil).Grant(task("p", "main", true, "NPM_TOKEN")); !errors.Is(err, ErrSecretDenied) || !strings.Contains(err.Error(), "--secrets") {
		t.Fatalf("a worker without grants: %v", err)
	}
}

func TestLoadSecrets(t *testing.T) {
	tests := []struct {
		name, file, err string
	}{
		{"good", "secrets:\n  - {name: NPM_TOKEN, refs: [main], protected: true}\n", ""},
		{"unknown field", "secrets:\n  - {name: A, scope: all}\n", `secrets[0].scope: unknown field "scope" in grant`},
		{"sluice variable", "secrets:\n  - {name: TOKEN, from_env: SLUICE_API_TOKEN}\n", "Sluice's own variables"},
		{"nats variable", "secrets:\n  - {name: NATS_CREDS}\n", "Sluice's own variables"},
		{"bad name", "secrets:\n  - {name: 'a-b'}\n", "is not an environment variable name"},
		{"bad glob", "secrets:\n  - {name: A, refs: ['[']}\n", `:2:22: secrets[0].refs[0]: bad glob "["`},
		{"no name", "secrets:\n  - {refs: [main]}\n", "secrets[0].name: missing"},
		{"not a list", "secrets: {name: A}\n", "secrets: must be a list"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "secrets.yaml")
			if err := os.WriteFile(p, []byte(tt.file), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := LoadSecrets(p)
			if tt.err == "" && err != nil || tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err) || !strings.Contains(err.Error(), p)) {
				t.Fatalf("LoadSecrets = %v, want %q naming the file", err, tt.err)
			}
		})
	}
}
