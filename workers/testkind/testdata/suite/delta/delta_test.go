package delta

import (
	"testing"
	"time"
)

// TestSleep takes a known time, the duration the shard split balances.
func TestSleep(t *testing.T) {
	time.Sleep(400 * time.Millisecond)
}

func TestQuick(t *testing.T) {}
