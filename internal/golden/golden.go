// Package golden compares what a test produced with a golden file, the expected output
// kept under testdata: `go test ./pkg -update` rewrites the files instead, and the diff of
// the rewrite is what a reviewer reads. Formats users and other tools read (SARIF, JUnit,
// spec errors, CLI output, rewritten configs) are tested this way.
package golden

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata instead of comparing with them")

// Update reports whether the tests run with -update.
func Update() bool { return *update }

// Check compares got with the file at path (relative to the test's package directory), or
// writes got there under -update.
func Check(tb testing.TB, path string, got []byte) {
	tb.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			tb.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		tb.Fatalf("%v (go test -update creates it)", err)
	}
	if !bytes.Equal(got, want) {
		tb.Errorf("%s differs from what the test produced (go test -update rewrites it)\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}
