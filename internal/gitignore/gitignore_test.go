package gitignore

import (
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// kept walks root as internal/source and the governance scan do and returns the files git
// would keep, in walk order.
func kept(t *testing.T, root string) []string {
	t.Helper()
	m := New(root)
	var out []string
	err := filepath.WalkDir(root, func(abs string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, abs)
		if err != nil {
			return err
		}
		if rel == "." {
			return m.Enter(nil)
		}
		parts := strings.Split(filepath.ToSlash(rel), "/")
		if d.IsDir() && d.Name() == ".git" {
			return filepath.SkipDir
		}
		if m.Ignored(parts, d.IsDir()) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			return m.Enter(parts)
		}
		out = append(out, filepath.ToSlash(rel))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestMatcher(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files map[string]string
		want  []string
	}{
		{
			name:  "no ignore files keeps everything",
			files: map[string]string{"a.txt": "", "dir/b.txt": ""},
			want:  []string{"a.txt", "dir/b.txt"},
		},
		{
			name: "patterns, negation, comments and anchors",
			files: map[string]string{
				".gitignore":     "# build outputs\n*.log\n!keep.log\n\n/only-top.txt\n",
				"app.log":        "",
				"keep.log":       "",
				"only-top.txt":   "",
				"d/only-top.txt": "",
				"d/x.log":        "",
			},
			want: []string{".gitignore", "d/only-top.txt", "keep.log"},
		},
		{
			name: "an ignored directory cannot be re-included",
			files: map[string]string{
				".gitignore":     "build/\n!build/keep.txt\n",
				"build/keep.txt": "",
				"src/main.go":    "",
			},
			want: []string{".gitignore", "src/main.go"},
		},
		{
			name: "a nested file applies below its directory and overrides an outer one",
			files: map[string]string{
				".gitignore":          "*.log\n",
				"sub/.gitignore":      "secret.txt\r\n!debug.log\n",
				"sub/secret.txt":      "",
				"sub/deep/secret.txt": "",
				"sub/debug.log":       "",
				"secret.txt":          "",
				"debug.log":           "",
			},
			want: []string{".gitignore", "secret.txt", "sub/.gitignore", "sub/debug.log"},
		},
		{
			name: ".git/info/exclude has the lowest priority",
			files: map[string]string{
				".git/info/exclude": "*.tmp\nexcluded.txt\n",
				".gitignore":        "!keep.tmp\n",
				"excluded.txt":      "",
				"drop.tmp":          "",
				"keep.tmp":          "",
			},
			want: []string{".gitignore", "keep.tmp"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			for name, body := range tc.files {
				p := filepath.Join(root, filepath.FromSlash(name))
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if got := kept(t, root); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("kept %q, want %q", got, tc.want)
			}
		})
	}
}

// An ignore file that cannot be read is an error naming it, not an empty pattern list.
func TestEnterUnreadable(t *testing.T) {
	root := t.TempDir()
	if err := os.Mkdir(filepath.Join(root, ".gitignore"), 0o755); err != nil {
		t.Fatal(err)
	}
	err := New(root).Enter(nil)
	if err == nil || !strings.Contains(err.Error(), filepath.Join(root, ".gitignore")) {
		t.Fatalf("Enter with a directory for .gitignore: %v, want an error naming it", err)
	}
}
