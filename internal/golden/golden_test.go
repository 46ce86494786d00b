package golden_test

import (
	"path/filepath"
	"testing"

	"github.com/sluice-ci/sluice/internal/golden"
)

// recorder is a testing.TB that records failures instead of failing.
type recorder struct {
	testing.TB
	failed bool
}

func (r *recorder) Errorf(string, ...any) { r.failed = true }
func (r *recorder) Fatalf(string, ...any) { r.failed = true }
func (r *recorder) Helper()               {}

func TestCheck(t *testing.T) {
	if golden.Update() {
		t.Skip("-update rewrites golden files; nothing to compare")
	}
	check := func(path string, got string) (failed bool) {
		r := &recorder{TB: t}
		golden.Check(r, path, []byte(got))
		return r.failed
	}
	hello := filepath.Join("testdata", "hello.txt")
	if check(hello, "hello\n") {
		t.Error("Check fails on the output the golden file holds")
	}
	if !check(hello, "hello, world\n") {
		t.Error("Check passes output the golden file does not hold")
	}
	if !check(filepath.Join("testdata", "missing.txt"), "") {
		t.Error("Check passes when the golden file is missing")
	}
}
