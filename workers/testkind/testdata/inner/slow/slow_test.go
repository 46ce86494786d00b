package slow

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestFirst(t *testing.T) {}

// TestSlow, with SYNC_DIR set, says it has started and runs until its shard is stopped.
func TestSlow(t *testing.T) {
	dir := os.Getenv("SYNC_DIR")
	if dir == "" {
		return
	}
	if err := os.WriteFile(filepath.Join(dir, "slow-started"), nil, 0o666); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Minute)
}
