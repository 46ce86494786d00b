package workers

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"

	"github.com/sluice-ci/sluice/internal/bus"
	"github.com/sluice-ci/sluice/internal/lockfile"
	sluicev1 "github.com/sluice-ci/sluice/proto/sluice/v1"
	"github.com/sluice-ci/sluice/workers/exec"
)

// Defaults of the step users: a range of uids no account of the host uses, one per task
// slot of every worker of the host, and the group they share.
const (
	DefaultStepUID    = 200000
	DefaultStepUIDs   = 1024
	stepUIDLockSubdir = "sluice-step-uids"
)

// uidPool hands each task slot a step uid that no other worker of the host holds: a slot
// claims a uid with an exclusive lock on <tmp>/sluice-step-uids/<uid>.lock, held for the
// worker's life (the kernel drops it when the worker dies). A uid's processes belong to its
// current holder, so whatever runs under a newly claimed uid is a dead worker's orphan and
// is killed before the slot takes work.
type uidPool struct {
	gid   int
	locks []*lockfile.Lock
	uids  []int
}

func claimUIDs(base, count, want int, log *slog.Logger) (*uidPool, error) {
	dir := filepath.Join(os.TempDir(), stepUIDLockSubdir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("step uid locks: %w", err)
	}
	p := &uidPool{gid: base}
	// The first uid of the range is the shared group; the slots take the others.
	for uid := base + 1; uid < base+count && len(p.uids) < want; uid++ {
		l, err := lockfile.TryLock(filepath.Join(dir, strconv.Itoa(uid)+".lock"))
		if errors.Is(err, lockfile.ErrHeld) {
			continue
		}
		if err != nil {
			p.close()
			return nil, fmt.Errorf("step uid %d: %w", uid, err)
		}
		p.locks = append(p.locks, l)
		p.uids = append(p.uids, uid)
	}
	if n := exec.KillUsers(p.uids...); n > 0 {
		log.Warn("killed processes a dead worker's steps left behind", "uids", fmt.Sprintf("%d..%d", p.uids[0], p.uids[len(p.uids)-1]), "processes", n)
	}
	if len(p.uids) < want {
		have := len(p.uids)
		p.close()
		return nil, fmt.Errorf("%w: %d task slots need step uids, only %d of %d..%d are free (other workers of this host hold the rest): widen --step-uids",
			ErrBadConfig, want, have, base+1, base+count-1)
	}
	return p, nil
}

// sandbox is slot i's.
func (p *uidPool) sandbox(i int) *exec.Sandbox {
	if p == nil {
		return nil
	}
	return &exec.Sandbox{UID: p.uids[i], GID: p.gid}
}

func (p *uidPool) close() {
	if p == nil {
		return
	}
	for _, l := range p.locks {
		_ = l.Unlock()
	}
}

// isolate claims a step user for each task slot and checks that steps start as it, in a PID
// namespace; without the privileges for that the worker refuses to start, unless told to
// run steps as itself.
func (w *Worker) isolate() error {
	if w.c.UnsafeSharedUser {
		w.log.Warn("UNSAFE: steps run as the worker's own user, without a PID namespace: any step can read the worker's environment, credentials and caches, other tasks' trees, and leave processes running")
		return nil
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("%w: the worker runs as uid %d, so it cannot run steps as users of their own: run it as root (in a container or VM of its own is best), or pass --unsafe-shared-user to let steps read everything the worker can", ErrBadConfig, os.Geteuid())
	}
	if err := reachable(w.c.WorkDir); err != nil {
		return err
	}
	pool, err := claimUIDs(w.c.StepUID, w.c.StepUIDs, len(w.handlers)*w.c.Concurrency, w.log)
	if err != nil {
		return err
	}
	if err := exec.CheckSandbox(pool.uids[0], pool.gid); err != nil {
		pool.close()
		return fmt.Errorf("%w: %v (pass --unsafe-shared-user to run steps as the worker's user)", ErrBadConfig, err)
	}
	w.uids = pool
	return nil
}

// reachable checks that a step user can cross every directory above dir.
func reachable(dir string) error {
	for d := filepath.Dir(dir); ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			return fmt.Errorf("%w: work dir %s: %v", ErrBadConfig, dir, err)
		}
		if fi.Mode().Perm()&0o001 == 0 {
			return fmt.Errorf("%w: work dir %s is below %s (mode %v), which step users cannot cross: choose a work dir elsewhere (the default is under %s) or make %s searchable (chmod o+x)",
				ErrBadConfig, dir, d, fi.Mode().Perm(), os.TempDir(), d)
		}
		if d == filepath.Dir(d) {
			return nil
		}
	}
}

// stepCache is the cache directory (XDG_CACHE_HOME: Go's build cache, pip's, ...) a task's
// steps share with the other runs of their pipeline at their level of trust: runs of
// protected refs share one, all others another, so a branch anyone may push cannot poison
// what a release build reads.
func (w *Worker) stepCache(t *sluicev1.Task, sb *exec.Sandbox) (string, error) {
	trust := "unprotected"
	if t.GetRefProtected() {
		trust = "protected"
	}
	dir := filepath.Join(w.c.WorkDir, ".caches", bus.Tokenize(t.GetPipeline())+"-"+trust)
	if _, ok := w.caches.Load(dir); ok {
		return dir, nil
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o711); err != nil {
		return "", fmt.Errorf("step cache: %w", err)
	}
	if err := os.Mkdir(dir, 0o770); err != nil && !os.IsExist(err) {
		return "", fmt.Errorf("step cache: %w", err)
	}
	if sb != nil {
		// Every step user of the host writes it (group), nobody else reads it; new entries
		// keep the group.
		if err := os.Chown(dir, 0, sb.GID); err != nil {
			return "", fmt.Errorf("step cache: %w", err)
		}
		if err := os.Chmod(dir, 0o770|os.ModeSetgid); err != nil {
			return "", fmt.Errorf("step cache: %w", err)
		}
	}
	w.caches.Store(dir, struct{}{})
	return dir, nil
}
