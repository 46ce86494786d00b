package suite

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestSuiteReportsFailures does what testify's own suite tests do: it runs a suite whose
// tests fail on purpose through testing.RunTests and passes when they failed. go test
// -json reports the inner tests failed inside a test and a package that pass.
func TestSuiteReportsFailures(t *testing.T) {
	ok := testing.RunTests(func(string, string) (bool, error) { return true, nil }, []testing.InternalTest{{
		Name: t.Name() + "/InnerSuite",
		F: func(t *testing.T) {
			t.Run("TestFailsOnPurpose", func(t *testing.T) { t.Error("expected failure: the suite must report it") })
			t.Run("TestPasses", func(t *testing.T) {})
		},
	}})
	if ok {
		t.Fatal("the inner suite passed; it must fail")
	}
}

// TestAssert fails, when FAIL_ASSERT is set, with an assertion message as testify prints
// it. With SYNC_DIR set it first waits for the slow package's test to start, so that the
// shard running it is stopped in the middle of its work.
func TestAssert(t *testing.T) {
	if os.Getenv("FAIL_ASSERT") == "" {
		return
	}
	if dir := os.Getenv("SYNC_DIR"); dir != "" {
		for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			if _, err := os.Stat(filepath.Join(dir, "slow-started")); err == nil {
				break
			}
		}
	}
	t.Errorf("\n\tError Trace:\tsuite_test.go:40\n\tError:      \tNot equal: \n\t            \texpected: 847\n\t            \tactual  : 845\n\tTest:       \tTestAssert")
}
