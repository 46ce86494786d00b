package exec

import (
	"fmt"
	"io/fs"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// Sandbox runs a task's processes apart from the worker: as an unprivileged user no other
// running task has (UID), in a new PID namespace. The steps cannot read the worker's
// environment or memory (/proc of another user), its credentials and caches (files only
// the worker's user may read), or other tasks' trees (each task's directory belongs to its
// own user, mode 0700); and when a step's first process ends, the kernel ends every process
// of its namespace, setsid'd daemons included. The worker must run as root (or hold
// CAP_SETUID, CAP_SETGID and CAP_SYS_ADMIN) to start it.
//
// GID is shared by every step user of a worker host: it owns the caches a pipeline's steps
// share (the Go build cache), which steps write with umask 002.
type Sandbox struct {
	UID, GID int
	// used is set when a process is prepared to run as UID, so a task that started none
	// costs no sweep of /proc.
	used atomic.Bool
}

// CheckSandbox reports whether this process can start sandboxed steps, starting one.
func CheckSandbox(uid, gid int) error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("%w: the worker runs as uid %d, not root: it cannot start steps as other users", ErrNoSandbox, os.Geteuid())
	}
	cmd := osexec.Command("/bin/sh", "-c", "test $$ = 1 && test \"$(id -u)\" = "+strconv.Itoa(uid))
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	cmd.Dir = "/"
	(&Sandbox{UID: uid, GID: gid}).Prepare(cmd)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%w: a step as uid %d in a new PID namespace did not run: %v %s", ErrNoSandbox, uid, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// Prepare makes cmd start in the sandbox. Call Start and Wait on one goroutine with its OS
// thread locked: the kernel kills the step if the thread that started it ends (so a killed
// worker leaves no step running), and Go may end threads it no longer needs.
func (s *Sandbox) Prepare(cmd *osexec.Cmd) {
	if s == nil {
		return
	}
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	s.used.Store(true)
	a := cmd.SysProcAttr
	a.Credential = &syscall.Credential{Uid: uint32(s.UID), Gid: uint32(s.GID), Groups: []uint32{}}
	a.Cloneflags |= syscall.CLONE_NEWPID
	a.Pdeathsig = syscall.SIGKILL
}

// Own gives the tree at dir to the sandbox's user, so its steps can read and write it and
// nobody else but the worker can.
func (s *Sandbox) Own(dir string) error {
	if s == nil {
		return nil
	}
	// WalkDir reads each entry's type from its directory listing: no lstat per file.
	return filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := os.Lchown(p, s.UID, s.GID); err != nil {
			return fmt.Errorf("give %s to the step user: %w", p, err)
		}
		if p == dir {
			return os.Chmod(p, 0o700)
		}
		return nil
	})
}

// OwnNew gives directories this process has just made, still empty, to the sandbox's user:
// one chown each, where Own reads the tree.
func (s *Sandbox) OwnNew(dirs ...string) error {
	if s == nil {
		return nil
	}
	for _, d := range dirs {
		if err := os.Lchown(d, s.UID, s.GID); err != nil {
			return fmt.Errorf("give %s to the step user: %w", d, err)
		}
	}
	return nil
}

// Sweep ends what the processes prepared since the last sweep left behind and returns how
// many it killed. A step's PID namespace ends its processes with it; the sweep is the check
// that nothing of the uid is left all the same, paid only by tasks that started a process.
//
// It runs after every such task, so it is the quick scan of /proc: the owner of each
// process's entry, which is its effective uid, and the status of those of the uid. A process
// whose real uid is the step's and effective uid another (a setuid program the step user
// ran) outside the step's namespace is left to KillUsers, which reads every status when a
// worker takes the uids. Reading every status here cost 1.3 ms per task with 70 processes on
// the host, nine times the quick scan.
func (s *Sandbox) Sweep() int {
	if s == nil || !s.used.Swap(false) {
		return 0
	}
	return killAll(uidSet(s.UID), ownedBy)
}

// KillUsers ends every process of the uids, whatever /proc shows as the owner of its entry:
// what a killed worker's steps left, found when its successor takes the uids. It returns
// how many it killed.
func KillUsers(uids ...int) int {
	return killAll(uidSet(uids...), everyProcess)
}

func uidSet(uids ...int) map[int]bool {
	set := make(map[int]bool, len(uids))
	for _, uid := range uids {
		set[uid] = true
	}
	return set
}

// killAll kills the processes whose real uid is in uids, among the candidates of /proc that
// pick chooses, in rounds of one scan each, until none is left.
func killAll(uids map[int]bool, pick func(pid string, uids map[int]bool) bool) int {
	// A killed process shows in /proc until the kernel has ended it, which under load can
	// outlast a round: it is killed again but counted once.
	killed := map[int]bool{}
	for round := 0; round < 10; round++ {
		pids := processesOf(uids, pick)
		if len(pids) == 0 {
			break
		}
		for _, pid := range pids {
			if syscall.Kill(pid, syscall.SIGKILL) == nil {
				killed[pid] = true
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	return len(killed)
}

// ownedBy picks the processes whose /proc entry belongs to one of uids.
func ownedBy(pid string, uids map[int]bool) bool {
	var st syscall.Stat_t
	return syscall.Stat("/proc/"+pid, &st) == nil && uids[int(st.Uid)]
}

func everyProcess(string, map[int]bool) bool { return true }

// processesOf lists the live processes, among those pick chooses, whose real uid is in uids.
func processesOf(uids map[int]bool, pick func(pid string, uids map[int]bool) bool) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || !pick(e.Name(), uids) {
			continue
		}
		status, err := os.ReadFile(filepath.Join("/proc", e.Name(), "status"))
		if err != nil {
			continue
		}
		mine, zombie := false, false
		for _, line := range strings.Split(string(status), "\n") {
			if rest, ok := strings.CutPrefix(line, "State:"); ok {
				zombie = strings.HasPrefix(strings.TrimSpace(rest), "Z")
			}
			if rest, ok := strings.CutPrefix(line, "Uid:"); ok {
				f := strings.Fields(rest)
				if len(f) > 0 {
					uid, err := strconv.Atoi(f[0])
					mine = err == nil && uids[uid]
				}
				break
			}
		}
		// A zombie is dead already; its parent reaps it.
		if mine && !zombie {
			pids = append(pids, pid)
		}
	}
	return pids
}
