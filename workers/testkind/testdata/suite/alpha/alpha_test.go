package alpha

import (
	"testing"
	"time"
)

// TestSleep takes a known time, the duration the shard split balances.
func TestSleep(t *testing.T) {
	time.Sleep(1200 * time.Millisecond)
}

func TestQuick(t *testing.T) {}
