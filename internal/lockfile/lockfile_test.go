package lockfile_test

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-ci/sluice/internal/lockfile"
)

// TestMain doubles as the other process: with LOCKFILE_HOLD set, it takes the lock, says so
// and holds it until killed.
func TestMain(m *testing.M) {
	if path := os.Getenv("LOCKFILE_HOLD"); path != "" {
		if _, err := lockfile.TryLock(path); err != nil {
			fmt.Println(err)
			os.Exit(1)
		}
		fmt.Println("held")
		select {}
	}
	os.Exit(m.Run())
}

func TestAnotherProcessHoldingTheLockIsNamed(t *testing.T) {
	path := filepath.Join(t.TempDir(), "LOCK")
	other := exec.Command(os.Args[0])
	other.Env = append(os.Environ(), "LOCKFILE_HOLD="+path)
	out, err := other.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := other.Start(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 5)
	if _, err := out.Read(buf); err != nil || string(buf) != "held\n" {
		t.Fatalf("the other process: %q %v", buf, err)
	}
	_, err = lockfile.TryLock(path)
	if !errors.Is(err, lockfile.ErrHeld) || !strings.Contains(err.Error(), fmt.Sprintf("pid %d", other.Process.Pid)) {
		t.Fatalf("taking a held lock: %v, want ErrHeld naming pid %d", err, other.Process.Pid)
	}
	// The kernel releases the lock of a process that dies, however it dies.
	_ = other.Process.Kill()
	_ = other.Wait()
	l, err := lockfile.TryLock(path)
	if err != nil {
		t.Fatalf("after the holder died: %v", err)
	}
	if err := l.Unlock(); err != nil {
		t.Fatal(err)
	}
	l, err = lockfile.TryLock(path)
	if err != nil {
		t.Fatalf("after Unlock: %v", err)
	}
	_ = l.Unlock()
}
