package source

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

// writeTree creates files under root; a body of "->target" makes a symlink.
func writeTree(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for name, body := range files {
		p := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if target, ok := bytes.CutPrefix([]byte(body), []byte("->")); ok {
			if err := os.Symlink(string(target), p); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// listBundle returns "name type mode" of every entry, in bundle order.
func listBundle(t *testing.T, data []byte) []string {
	t.Helper()
	gz, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	var out []string
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		if !hdr.ModTime.Equal(time.Unix(0, 0)) || hdr.Uid != 0 || hdr.Gid != 0 || hdr.Uname != "" || hdr.Gname != "" {
			t.Errorf("%s: time/owner not zeroed: %v %d %d %q %q", hdr.Name, hdr.ModTime, hdr.Uid, hdr.Gid, hdr.Uname, hdr.Gname)
		}
		out = append(out, string(hdr.Typeflag)+" "+hdr.Name+" "+os.FileMode(hdr.Mode).String())
	}
}

func pack(t *testing.T, dir string, l Limits) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := Pack(t.Context(), dir, &buf, l); err != nil {
		t.Fatalf("Pack: %v", err)
	}
	return buf.Bytes()
}

func TestPackGitignore(t *testing.T) {
	root := t.TempDir()
	writeTree(t, root, map[string]string{
		".gitignore":           "# build outputs\n*.log\n!keep.log\nbuild/\n/only-top.txt\n",
		"main.go":              "package main",
		"app.log":              "ignored",
		"keep.log":             "negated, kept",
		"only-top.txt":         "ignored at the top",
		"sub/only-top.txt":     "kept: the pattern is anchored",
		"build/out.bin":        "ignored dir",
		"build/keep.log":       "inside an ignored dir: stays ignored despite the negation",
		"sub/.gitignore":       "secret.txt\r\n!debug.log\n",
		"sub/secret.txt":       "ignored by the nested file",
		"sub/debug.log":        "re-included by the nested file",
		"sub/deep/secret.txt":  "ignored by the nested file, deeper",
		"other/secret.txt":     "kept: the nested file does not reach here",
		".git/config":          "never packed",
		".git/info/exclude":    "excluded.txt\n",
		"excluded.txt":         "ignored by .git/info/exclude",
		"sub/link":             "->../main.go",
		"nested/.git/HEAD":     "submodule metadata, never packed",
		"nested/code.go":       "package nested",
		"sub/deep/.gitkeep":    "",
		"sub/deep/not-ignored": "x",
	})
	if err := os.Chmod(filepath.Join(root, "main.go"), 0o755); err != nil {
		t.Fatal(err)
	}
	got := listBundle(t, pack(t, root, Limits{}))
	want := []string{
		"0 .gitignore -rw-r--r--",
		"0 keep.log -rw-r--r--",
		"0 main.go -rwxr-xr-x",
		"5 nested/ -rwxr-xr-x",
		"0 nested/code.go -rw-r--r--",
		"5 other/ -rwxr-xr-x",
		"0 other/secret.txt -rw-r--r--",
		"5 sub/ -rwxr-xr-x",
		"0 sub/.gitignore -rw-r--r--",
		"0 sub/debug.log -rw-r--r--",
		"5 sub/deep/ -rwxr-xr-x",
		"0 sub/deep/.gitkeep -rw-r--r--",
		"0 sub/deep/not-ignored -rw-r--r--",
		"2 sub/link -rwxrwxrwx",
		"0 sub/only-top.txt -rw-r--r--",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("bundle entries:\n got %q\nwant %q", got, want)
	}
}

func TestPackDeterministic(t *testing.T) {
	files := map[string]string{
		".gitignore": "*.tmp\n", "a.txt": "a", "dir/b.txt": "b", "dir/c.tmp": "c", "z/y/x": "deep",
	}
	one, two := t.TempDir(), t.TempDir()
	writeTree(t, one, files)
	writeTree(t, two, files)
	// Different times and an extra ignored file must not change the digest.
	old := time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)
	if err := os.Chtimes(filepath.Join(two, "a.txt"), old, old); err != nil {
		t.Fatal(err)
	}
	writeTree(t, two, map[string]string{"extra.tmp": "ignored"})

	first := pack(t, one, Limits{})
	if again := pack(t, one, Limits{}); !bytes.Equal(first, again) {
		t.Fatal("packing the same tree twice gave different bytes")
	}
	if other := pack(t, two, Limits{}); !bytes.Equal(first, other) {
		t.Fatal("packing an equal tree with other times gave different bytes")
	}
}

func TestPackRejects(t *testing.T) {
	tests := []struct {
		name   string
		files  map[string]string
		limits Limits
		want   error
	}{
		{"symlink out", map[string]string{"a": "x", "up": "->../../etc/passwd"}, Limits{}, ErrUnsafeEntry},
		{"absolute symlink", map[string]string{"etc": "->/etc"}, Limits{}, ErrUnsafeEntry},
		{"file too large", map[string]string{"big": "0123456789"}, Limits{MaxFileBytes: 5}, ErrTooLarge},
		{"too many files", map[string]string{"a": "", "b": "", "c": ""}, Limits{MaxFiles: 2}, ErrTooLarge},
		{"too many bytes", map[string]string{"a": "0123", "b": "0123"}, Limits{MaxTotalBytes: 6}, ErrTooLarge},
		{"bundle too large", map[string]string{"r": randomText(20000)}, Limits{MaxBundleBytes: 1000}, ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			writeTree(t, root, tt.files)
			err := Pack(t.Context(), root, io.Discard, tt.limits)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Pack error = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestPackRoundTrip(t *testing.T) {
	root := t.TempDir()
	writeTree(t, root, map[string]string{"a.txt": "a", "d/b.txt": "b", "d/l": "->b.txt"})
	if err := os.Chmod(filepath.Join(root, "a.txt"), 0o700); err != nil {
		t.Fatal(err)
	}
	dest := filepath.Join(t.TempDir(), "out")
	if err := Extract(t.Context(), bytes.NewReader(pack(t, root, Limits{})), dest, Limits{}); err != nil {
		t.Fatalf("Extract: %v", err)
	}
	assertSameTree(t, root, dest)
}

// assertSameTree compares names, types, modes, contents and link targets.
func assertSameTree(t *testing.T, want, got string) {
	t.Helper()
	if a, b := describeTree(t, want), describeTree(t, got); !reflect.DeepEqual(a, b) {
		t.Errorf("trees differ:\nwant %q\n got %q", a, b)
	}
}

func describeTree(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if rel == "." {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		s := rel + " " + fi.Mode().String()
		switch {
		case fi.Mode()&os.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			s += " -> " + target
		case fi.Mode().IsRegular():
			body, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			s += " " + string(body)
		}
		out = append(out, s)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
