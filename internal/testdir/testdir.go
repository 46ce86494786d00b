// Package testdir makes directories for tests that run steps as other users: a worker's
// work dir must be reachable by its step users, which t.TempDir (mode 0700) is not.
package testdir

import (
	"os"
	"testing"
)

// Reachable returns a fresh directory under the system's temporary directory that every
// user may cross (mode 0711); it is removed when the test ends.
func Reachable(tb testing.TB) string {
	tb.Helper()
	dir, err := os.MkdirTemp("", "sluice-test-work-")
	if err != nil {
		tb.Fatal(err)
	}
	if err := os.Chmod(dir, 0o711); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

// Shared returns a fresh directory that every user may write (mode 0777), for files a
// test's steps leave for the test to read; it is removed when the test ends.
func Shared(tb testing.TB) string {
	tb.Helper()
	dir := Reachable(tb)
	if err := os.Chmod(dir, 0o777); err != nil {
		tb.Fatal(err)
	}
	return dir
}
