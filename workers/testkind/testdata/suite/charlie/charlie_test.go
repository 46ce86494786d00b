package charlie

import (
	"os"
	"testing"
	"time"
)

// TestSleep takes a known time, the duration the shard split balances.
func TestSleep(t *testing.T) {
	time.Sleep(1000 * time.Millisecond)
}

func TestQuick(t *testing.T) {}

// TestMaybeFail fails when the stage sets FAIL_ONE=1.
func TestMaybeFail(t *testing.T) {
	if os.Getenv("FAIL_ONE") == "1" {
		t.Fatal("FAIL_ONE is set")
	}
}
