package source

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// entry is one tar entry of a test bundle.
type entry struct {
	hdr  tar.Header
	body string
}

func file(name, body string, mode int64) entry {
	return entry{tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(body))}, body}
}
func dir(name string, mode int64) entry {
	return entry{hdr: tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: mode}}
}
func symlink(name, target string) entry {
	return entry{hdr: tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: target, Mode: 0o777}}
}
func hardlink(name, target string) entry {
	return entry{hdr: tar.Header{Typeflag: tar.TypeLink, Name: name, Linkname: target, Mode: 0o644}}
}
func special(name string, typ byte) entry {
	return entry{hdr: tar.Header{Typeflag: typ, Name: name, Mode: 0o600, Devmajor: 1, Devminor: 3}}
}

// bundle builds a tar.gz the way an attacker could, with archive/tar directly.
func bundle(t *testing.T, entries ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, e := range entries {
		hdr := e.hdr
		if err := tw.WriteHeader(&hdr); err != nil {
			t.Fatalf("write header %s: %v", hdr.Name, err)
		}
		if _, err := tw.Write([]byte(e.body)); err != nil {
			t.Fatalf("write %s: %v", hdr.Name, err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestExtractRejects(t *testing.T) {
	big := strings.Repeat("x", 2000)
	tests := []struct {
		name    string
		data    func(t *testing.T) []byte
		limits  Limits
		want    error
		mention string
	}{
		{"dot-dot entry", b(file("ok.txt", "ok", 0o644), file("../evil", "x", 0o644)), Limits{}, ErrUnsafeEntry, "../evil"},
		{"dot-dot inside name", b(file("a/../../evil", "x", 0o644)), Limits{}, ErrUnsafeEntry, "a/../../evil"},
		{"dot-dot that cleans away", b(file("a/../b", "x", 0o644)), Limits{}, ErrUnsafeEntry, "a/../b"},
		{"absolute path", b(file("/tmp/evil", "x", 0o644)), Limits{}, ErrUnsafeEntry, "/tmp/evil"},
		{"symlink absolute", b(symlink("etc", "/etc")), Limits{}, ErrUnsafeEntry, "etc"},
		{"symlink relative out", b(dir("a/", 0o755), symlink("a/up", "../../outside")), Limits{}, ErrUnsafeEntry, "a/up"},
		{"symlink out through a symlink", b(dir("d1/d2/", 0o755), symlink("d1/d2/s", "../.."), symlink("d1/d2/t", "s/../x")),
			Limits{}, ErrUnsafeEntry, "d1/d2/t"},
		{"write through a symlink", b(dir("sub/", 0o755), symlink("link", "sub"), file("link/f", "x", 0o644)), Limits{}, ErrUnsafeEntry, "link/f"},
		{"write below a file", b(file("f", "x", 0o644), file("f/g", "x", 0o644)), Limits{}, ErrUnsafeEntry, "f/g"},
		{"duplicate entry", b(file("f", "x", 0o644), symlink("f", "g")), Limits{}, ErrUnsafeEntry, `"f" appears twice`},
		{"hard link out", b(hardlink("passwd", "../../etc/passwd")), Limits{}, ErrUnsafeEntry, "passwd"},
		{"hard link absolute", b(hardlink("passwd", "/etc/passwd")), Limits{}, ErrUnsafeEntry, "passwd"},
		{"hard link to a directory", b(dir("d/", 0o755), hardlink("l", "d")), Limits{}, ErrUnsafeEntry, `"l"`},
		{"char device", b(special("null", tar.TypeChar)), Limits{}, ErrUnsafeEntry, "null"},
		{"block device", b(special("sda", tar.TypeBlock)), Limits{}, ErrUnsafeEntry, "sda"},
		{"fifo", b(special("pipe", tar.TypeFifo)), Limits{}, ErrUnsafeEntry, "pipe"},
		{"oversized file", b(file("small", "x", 0o644), file("big", big, 0o644)), Limits{MaxFileBytes: 1000}, ErrTooLarge, "big"},
		{"too many bytes in total", b(file("a", big, 0o644), file("b", big, 0o644), file("c", big, 0o644)),
			Limits{MaxTotalBytes: 5000}, ErrTooLarge, `"c"`},
		{"too many files", b(file("a", "", 0o644), file("b", "", 0o644), file("c", "", 0o644)), Limits{MaxFiles: 2}, ErrTooLarge, `"c"`},
		{"compressed bundle too large", b(file("a", randomText(20000), 0o644)), Limits{MaxBundleBytes: 1000}, ErrTooLarge, "compressed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			parent := t.TempDir()
			dest := filepath.Join(parent, "tree")
			err := Extract(t.Context(), bytes.NewReader(tt.data(t)), dest, tt.limits)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Extract error = %v, want %v", err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.mention) {
				t.Errorf("error %q does not name %q", err, tt.mention)
			}
			left, rerr := os.ReadDir(parent)
			if rerr != nil {
				t.Fatal(rerr)
			}
			if len(left) != 0 {
				t.Errorf("rejected bundle left %v behind", left)
			}
			// Validate applies the same checks without writing, except those that need the
			// files on disk (links resolved through other links).
			verr := Validate(t.Context(), bytes.NewReader(tt.data(t)), tt.limits)
			if tt.name != "symlink out through a symlink" && !errors.Is(verr, tt.want) {
				t.Errorf("Validate error = %v, want %v", verr, tt.want)
			}
		})
	}
}

func b(entries ...entry) func(t *testing.T) []byte {
	return func(t *testing.T) []byte { return bundle(t, entries...) }
}

// randomText does not compress, so it makes a large compressed bundle.
func randomText(n int) string {
	var sb strings.Builder
	x := uint32(2463534242)
	for range n {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		sb.WriteByte(byte('!' + x%90))
	}
	return sb.String()
}

func TestExtractNotGzip(t *testing.T) {
	err := Extract(t.Context(), strings.NewReader("plain text"), filepath.Join(t.TempDir(), "d"), Limits{})
	if err == nil || !strings.Contains(err.Error(), "not gzip") {
		t.Fatalf("error = %v, want one saying the bundle is not gzip-compressed", err)
	}
}

func TestExtract(t *testing.T) {
	data := bundle(t,
		dir("./", 0o750),
		dir("bin/", 0o755),
		file("bin/run.sh", "#!/bin/sh\necho hi\n", 0o755),
		file("README", "hello", 0o644),
		file("deep/implied/parent.txt", "p", 0o600),
		file("setuid", "s", 0o4755),
		dir("ro/", 0o555),
		file("ro/inside", "r", 0o444),
		symlink("bin/readme", "../README"),
		symlink("dangling", "not/yet/built"),
		hardlink("README.hard", "README"),
	)
	dest := filepath.Join(t.TempDir(), "work", "tree")
	if err := Extract(t.Context(), bytes.NewReader(data), dest, Limits{}); err != nil {
		t.Fatalf("Extract: %v", err)
	}
	wantFiles := []struct {
		name, body string
		mode       fs.FileMode
	}{
		{"bin/run.sh", "#!/bin/sh\necho hi\n", 0o755},
		{"README", "hello", 0o644},
		{"deep/implied/parent.txt", "p", 0o600},
		{"setuid", "s", 0o755},
		{"ro/inside", "r", 0o444},
		{"bin/readme", "hello", 0o644},
		{"README.hard", "hello", 0o644},
	}
	for _, w := range wantFiles {
		p := filepath.Join(dest, w.name)
		got, err := os.ReadFile(p)
		if err != nil {
			t.Errorf("%s: %v", w.name, err)
			continue
		}
		if string(got) != w.body {
			t.Errorf("%s = %q, want %q", w.name, got, w.body)
		}
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != w.mode {
			t.Errorf("%s mode = %v, want %v", w.name, fi.Mode(), w.mode)
		}
	}
	for name, want := range map[string]fs.FileMode{".": 0o750, "bin": 0o755, "ro": 0o755} {
		fi, err := os.Stat(filepath.Join(dest, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != want {
			t.Errorf("dir %s mode = %v, want %v", name, fi.Mode().Perm(), want)
		}
	}
	if target, err := os.Readlink(filepath.Join(dest, "dangling")); err != nil || target != "not/yet/built" {
		t.Errorf("dangling symlink = %q, %v", target, err)
	}
}

func TestExtractDestination(t *testing.T) {
	data := bundle(t, file("f", "x", 0o644))
	tests := []struct {
		name    string
		prepare func(dest string) error
		wantErr error
	}{
		{"missing", func(string) error { return nil }, nil},
		{"empty directory", func(d string) error { return os.Mkdir(d, 0o755) }, nil},
		{"not empty", func(d string) error {
			if err := os.Mkdir(d, 0o755); err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(d, "old"), nil, 0o644)
		}, fs.ErrExist},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dest := filepath.Join(t.TempDir(), "tree")
			if err := tt.prepare(dest); err != nil {
				t.Fatal(err)
			}
			err := Extract(t.Context(), bytes.NewReader(data), dest, Limits{})
			if !errors.Is(err, tt.wantErr) && !(err == nil && tt.wantErr == nil) {
				t.Fatalf("Extract = %v, want %v", err, tt.wantErr)
			}
		})
	}
}
