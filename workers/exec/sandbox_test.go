package exec

import (
	"os"
	osexec "os/exec"
	"syscall"
	"testing"
	"time"
)

// TestSweepEndsWhatAPreparedTaskLeft: a process of the sandbox's uid outlives its task only
// until the sweep after a task that prepared a process; a task that prepared none leaves
// the scan of /proc out.
func TestSweepEndsWhatAPreparedTaskLeft(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("the sweep test needs root to start a process as another user (CI runs as root)")
		}
		t.Skip("SKIPPING: starting a process as another user needs root")
	}
	const uid = 320001
	left := osexec.Command("sleep", "300")
	left.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid - 1}, Setsid: true}
	if err := left.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = left.Process.Kill(); _ = left.Wait() })
	exited := make(chan struct{})
	go func() { _ = left.Wait(); close(exited) }()

	sb := &Sandbox{UID: uid, GID: uid - 1}
	if n := sb.Sweep(); n != 0 {
		t.Fatalf("a sandbox that prepared nothing swept %d processes", n)
	}
	sb.Prepare(osexec.Command("true"))
	if n := sb.Sweep(); n != 1 {
		t.Fatalf("the sweep after a prepared process killed %d, want the 1 left running as uid %d", n, uid)
	}
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		t.Fatal("the process left running as the step user survived the sweep")
	}
	if n := sb.Sweep(); n != 0 {
		t.Fatalf("a second sweep with nothing prepared since killed %d", n)
	}
}
