package exec

import (
	"os"
	osexec "os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// needRoot skips a test that starts processes as other users when not root, except in CI,
// which runs as root: there the missing privilege fails the test instead of hiding it.
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("this test needs root to start a process as another user (CI runs as root)")
		}
		t.Skip("SKIPPING: starting a process as another user needs root")
	}
}

// TestSweepEndsWhatAPreparedTaskLeft: a process of the sandbox's uid outlives its task only
// until the sweep after a task that prepared a process; a task that prepared none leaves
// the scan of /proc out.
func TestSweepEndsWhatAPreparedTaskLeft(t *testing.T) {
	needRoot(t)
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

// setuidEnv makes this test binary, started as root, a process of a step user running a
// setuid-root program: real uid the value, effective uid root. It sleeps.
const setuidEnv = "SLUICE_TEST_SETUID_SLEEP"

func TestMain(m *testing.M) {
	if v := os.Getenv(setuidEnv); v != "" {
		uid, err := strconv.Atoi(v)
		if err != nil || unix.Setresuid(uid, 0, 0) != nil {
			os.Exit(3)
		}
		time.Sleep(300 * time.Second)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestKillUsersFindsAProcessOfTheUidRunningAsRoot: a step user's process that runs a
// setuid-root program shows in /proc as root's (an entry belongs to the effective uid). The
// quick sweep after a task does not see it (its documented limit); KillUsers, run when a
// worker takes the uids, reads every process's real uid and kills it.
func TestKillUsersFindsAProcessOfTheUidRunningAsRoot(t *testing.T) {
	needRoot(t)
	const uid = 320011
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	hidden := osexec.Command(self)
	hidden.Env = []string{setuidEnv + "=" + strconv.Itoa(uid)}
	hidden.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := hidden.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = hidden.Process.Kill() })
	exited := make(chan struct{})
	go func() { _ = hidden.Wait(); close(exited) }()
	status := "/proc/" + strconv.Itoa(hidden.Process.Pid) + "/status"
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, err := os.ReadFile(status)
		if err != nil {
			t.Fatalf("the process ended before it took uid %d: %v", uid, err)
		}
		if strings.Contains(string(b), "\nUid:\t"+strconv.Itoa(uid)+"\t0\t") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the process did not take real uid %d:\n%s", uid, b)
		}
		time.Sleep(5 * time.Millisecond)
	}

	sb := &Sandbox{UID: uid, GID: uid - 1}
	sb.Prepare(osexec.Command("true"))
	if n := sb.Sweep(); n != 0 {
		t.Fatalf("the quick sweep killed %d: it reads entries' owners, and this one shows root", n)
	}
	if n := KillUsers(uid); n != 1 {
		t.Fatalf("KillUsers killed %d, want the 1 process of real uid %d", n, uid)
	}
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		t.Fatal("the process survived KillUsers")
	}
}
