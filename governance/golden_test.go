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
	return copyTree(t, filepath.Join("testdata", "repo"))
}

// copyTree copies the tree at src as fixtureTree does.
func copyTree(t testing.TB, src string) string {
	t.Helper()
	dst := t.TempDir()
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

// The walk leaves out what git ignores, vendored directories, binaries, generated files,
// vendored bundles, minified files, lock files and files over the limit, and says so.
func TestGoldenRepoSkips(t *testing.T) {
	rep := scanFixture(t, fixtureTree(t), nil)
	want := map[SkipReason]int{
		SkipIgnored:   2, // build/, secrets.local.env
		SkipVendored:  1, // node_modules
		SkipBinary:    1, // bin/tool
		SkipGenerated: 2, // gen/api.pb.go (by name), src/generated/client.ts (by its header)
		SkipBundle:    1, // static/react-dom.development.js
		SkipMinified:  2, // static/widgets.min.js (by name), static/chart.js (by its lines)
		SkipLockfile:  1, // package-lock.json
		SkipTooLarge:  1, // data/seed.sql
	}
	if !maps.Equal(rep.Stats.Skipped, want) {
		t.Errorf("skipped %v, want %v", rep.Stats.Skipped, want)
	}
	for _, f := range rep.Findings {
		for _, never := range []string{"build/", "node_modules/", "bin/", "gen/", "src/generated/", "data/", "secrets.local.env", "static/", "package-lock.json"} {
			if strings.HasPrefix(f.File, never) {
				t.Errorf("finding in a skipped file: %s:%d %s", f.File, f.Line, f.Rule)
			}
		}
	}
}

// IncludeGenerated (include_generated in a rules file) reads what the default skips as
// built: codegen output, bundles, minified files and lock files, each of which holds
// findings in the fixture. Vendored directories and gitignored files stay out.
func TestIncludeGenerated(t *testing.T) {
	root := fixtureTree(t)
	for name, cfg := range map[string]func(*Config){
		"config":     func(c *Config) { c.IncludeGenerated = true },
		"rules file": func(c *Config) { c.Rules.IncludeGenerated = true },
	} {
		t.Run(name, func(t *testing.T) {
			rules, err := LoadRules(filepath.Join(root, "governance.yaml"))
			if err != nil {
				t.Fatal(err)
			}
			c := Config{Rules: rules, MaxFileBytes: 4 << 10}
			cfg(&c)
			e, err := New(c)
			if err != nil {
				t.Fatal(err)
			}
			rep, err := e.Scan(t.Context(), root)
			if err != nil {
				t.Fatal(err)
			}
			files := map[string]bool{}
			for _, f := range rep.Findings {
				files[f.File] = true
			}
			for _, f := range []string{"static/react-dom.development.js", "static/chart.js", "static/widgets.min.js", "package-lock.json"} {
				if !files[f] {
					t.Errorf("no finding in %s, which include-generated scans", f)
				}
			}
			for _, r := range []SkipReason{SkipGenerated, SkipBundle, SkipMinified, SkipLockfile} {
				if n := rep.Stats.Skipped[r]; n != 0 {
					t.Errorf("%d files skipped as %s", n, r)
				}
			}
			if rep.Stats.Skipped[SkipVendored] != 1 || rep.Stats.Skipped[SkipIgnored] != 2 {
				t.Errorf("skipped %v: vendored directories and gitignored files stay out", rep.Stats.Skipped)
			}
		})
	}
}
