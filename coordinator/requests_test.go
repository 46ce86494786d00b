package coordinator

import (
	"sync/atomic"
	"testing"
	"time"
)

// The run API answers a request while another is still under way (a submission waits for
// its run's lane, which may be busy): one slow request does not hold up the rest, at most
// apiConcurrency run at once, and after close nothing new starts and nothing under way is
// abandoned.
func TestRequestsRunConcurrentlyWithinTheirBound(t *testing.T) {
	q := newRequests(apiConcurrency)
	release := make(chan struct{})
	var running, most atomic.Int32
	slow := func() {
		n := running.Add(1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		<-release
		running.Add(-1)
	}
	if !q.do(slow) {
		t.Fatal("refused before close")
	}
	quick := make(chan struct{})
	if !q.do(func() { close(quick) }) {
		t.Fatal("refused before close")
	}
	select {
	case <-quick:
	case <-time.After(5 * time.Second):
		t.Fatal("a request waited for a slow one before it")
	}
	// Fill every slot; one more waits for a slot to free.
	for range apiConcurrency - 1 {
		q.do(slow)
	}
	extra := make(chan bool)
	go func() { extra <- q.do(func() {}) }()
	select {
	case <-extra:
		t.Fatalf("a request started beyond the %d at once", apiConcurrency)
	case <-time.After(100 * time.Millisecond):
	}
	closed := make(chan struct{})
	go func() { q.close(); close(closed) }()
	select {
	case <-closed:
		t.Fatal("close returned while requests were under way")
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	<-closed
	if <-extra {
		t.Error("a request waiting for a slot ran after close")
	}
	if q.do(func() { t.Error("ran after close") }) {
		t.Error("accepted after close")
	}
	if m := most.Load(); m != apiConcurrency {
		t.Errorf("%d requests ran at once, want %d", m, apiConcurrency)
	}
}
