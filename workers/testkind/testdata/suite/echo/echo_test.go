package echo

import (
	"testing"
	"time"
)

// TestSleep takes a known time, the duration the shard split balances.
func TestSleep(t *testing.T) {
	time.Sleep(800 * time.Millisecond)
}

func TestQuick(t *testing.T) {}
