// Package lockfile takes exclusive, advisory locks on files, for resources one process of a
// host may use at a time: a dev fleet's data directory, a step uid. The kernel releases a
// lock when its process dies, so a crash never leaves a stale lock behind.
package lockfile

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// Lock is a held lock; Unlock releases it.
type Lock struct{ f *os.File }

// TryLock takes the lock of path (creating the file, mode 0600) without waiting, and writes
// this process's pid in it. When another process holds it, the error wraps ErrHeld and
// names that process.
func TryLock(path string) (*Lock, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		defer f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%s: %w%s", path, ErrHeld, holder(f))
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &Lock{f: f}, nil
}

// holder is " (pid N)" when the lock file names its holder.
func holder(f *os.File) string {
	data := make([]byte, 32)
	n, _ := f.ReadAt(data, 0)
	if pid, err := strconv.Atoi(strings.TrimSpace(string(data[:n]))); err == nil && pid > 0 {
		return fmt.Sprintf(" (pid %d)", pid)
	}
	return ""
}

// Unlock releases the lock. The file stays: removing it would let a process that opened it
// before the removal hold a lock nobody else sees.
func (l *Lock) Unlock() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}
