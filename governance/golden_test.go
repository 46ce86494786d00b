package governance

import (
	"bytes"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-ci/sluice/internal/golden"
)

// fixtureTree copies testdata/repo to a temporary directory with every @@NAME@@ replaced
// by its fake secret, and dot.gitignore named .gitignore (git would not commit the files a
// fixture .gitignore ignores if it were called that in this repository).
func fixtureTree(t testing.TB) string {
	t.Helper()
	dst := t.TempDir()
	src := filepath.Join("testdata", "repo")
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if filepath.Base(rel) == "dot.gitignore" {
			rel = filepath.Join(filepath.Dir(rel), ".gitignore")
		}
		return os.WriteFile(filepath.Join(dst, rel), []byte(withFakes(string(data))), 0o644)
	})
	if err != nil {
		t.Fatalf("copy fixture tree: %v", err)
	}
	return dst
}

// scanFixture scans a fixture tree with its rules file and a 4 KB file limit (so that
// data/seed.sql is skipped as too large).
func scanFixture(t testing.TB, root string, baseline *Baseline) *Report {
	t.Helper()
	rules, err := LoadRules(filepath.Join(root, "governance.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	e, err := New(Config{Rules: rules, MaxFileBytes: 4 << 10, Baseline: baseline})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := e.Scan(t.Context(), root)
	if err != nil {
		t.Fatal(err)
	}
	rep.Stats.Duration = 0 // golden files hold no timings
	return rep
}

func TestGoldenRepo(t *testing.T) {
	rep := scanFixture(t, fixtureTree(t), nil)
	outputs := map[string]func(*bytes.Buffer) error{
		"repo.txt":       func(b *bytes.Buffer) error { return WriteText(b, rep, SeverityHigh) },
		"repo.jsonl":     func(b *bytes.Buffer) error { return WriteJSONLines(b, rep.Findings) },
		"repo.sarif":     func(b *bytes.Buffer) error { return WriteSARIF(b, rep, SARIFOptions{ToolVersion: "test"}) },
		"repo.junit.xml": func(b *bytes.Buffer) error { return WriteJUnit(b, rep, SeverityHigh) },
	}
	for name, write := range outputs {
		t.Run(name, func(t *testing.T) {
			var b bytes.Buffer
			if err := write(&b); err != nil {
				t.Fatal(err)
			}
			golden.Check(t, filepath.Join("testdata", "golden", name), b.Bytes())
			// A secret is never printed whole, in any format.
			if k := leakedFake(b.String()); k != "" {
				t.Errorf("%s shows the secret %s", name, k)
			}
		})
	}
}

// The walk leaves out what git ignores, vendored directories, binaries, generated files
// and files over the limit, and says so.
func TestGoldenRepoSkips(t *testing.T) {
	rep := scanFixture(t, fixtureTree(t), nil)
	want := map[SkipReason]int{
		SkipIgnored:   2, // build/, secrets.local.env
		SkipVendored:  1, // node_modules
		SkipBinary:    1, // bin/tool
		SkipGenerated: 2, // gen/api.pb.go, src/generated/client.ts
		SkipTooLarge:  1, // data/seed.sql
	}
	if !maps.Equal(rep.Stats.Skipped, want) {
		t.Errorf("skipped %v, want %v", rep.Stats.Skipped, want)
	}
	for _, f := range rep.Findings {
		for _, never := range []string{"build/", "node_modules/", "bin/", "gen/", "src/generated/", "data/", "secrets.local.env"} {
			if strings.HasPrefix(f.File, never) {
				t.Errorf("finding in a skipped file: %s:%d %s", f.File, f.Line, f.Rule)
			}
		}
	}
}
