//go:build unix

package pgcluster

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"

	"github.com/sluice-ci/sluice/internal/procgroup"
)

// defaultUsers are tried in order when this process is root and Options.User is empty.
var defaultUsers = []string{"postgres", "nobody"}

// runner runs the cluster's processes as this process's user, or, as root, as an
// unprivileged user that owns the cluster's files.
type runner struct {
	name     string
	uid, gid uint32
	asUser   bool // this process is root: switch to uid/gid
}

func runAs(name string) (*runner, error) {
	if os.Geteuid() != 0 {
		return &runner{}, nil
	}
	candidates := defaultUsers
	if name != "" {
		candidates = []string{name}
	}
	for _, n := range candidates {
		u, err := user.Lookup(n)
		if err != nil {
			continue
		}
		uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
		gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
		if err1 != nil || err2 != nil || uid == 0 {
			continue
		}
		return &runner{name: n, uid: uint32(uid), gid: uint32(gid), asUser: true}, nil
	}
	return nil, fmt.Errorf("%w: running as root, PostgreSQL must run as an unprivileged user, and none of %q exists "+
		"(create one, e.g. `useradd --system postgres`, or install postgresql-15, which creates it)", ErrStart, candidates)
}

// configure puts a server process in its own group (so a terminal's Ctrl-C reaches Sluice,
// which stops the server in order, and a kill reaches every backend), has it quit if this
// process dies, and runs it as the runner's user.
func (r *runner) configure(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{}
	setParentDeathSignal(cmd.SysProcAttr)
	if r.asUser {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: r.uid, Gid: r.gid, Groups: []uint32{}}
	}
	procgroup.Set(cmd)
}

// prepare makes the cluster directory reachable by the server's user.
func (r *runner) prepare(dir string) error {
	if !r.asUser {
		return nil
	}
	// Others may pass through (not list): the user owns only the entries inside.
	if err := os.Chmod(dir, 0o711); err != nil {
		return fmt.Errorf("%w: %v", ErrStart, err)
	}
	for d := filepath.Dir(dir); ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			return fmt.Errorf("%w: %v", ErrStart, err)
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		perm := fi.Mode().Perm()
		if ok && !(perm&0o001 != 0 || st.Uid == r.uid && perm&0o100 != 0 || st.Gid == r.gid && perm&0o010 != 0) {
			return fmt.Errorf("%w: the server runs as user %s, who cannot enter %s (mode %o); "+
				"put the cluster under a directory every user can enter, such as /tmp", ErrStart, r.name, d, perm)
		}
		if d == filepath.Dir(d) {
			return nil
		}
	}
}

func (r *runner) mkdir(dir string) error {
	if err := os.Mkdir(dir, 0o700); err != nil {
		return fmt.Errorf("%w: %v", ErrStart, err)
	}
	return r.chown(dir)
}

func (r *runner) writeFile(name string, data []byte) error {
	if err := os.WriteFile(name, data, 0o600); err != nil {
		return fmt.Errorf("%w: %v", ErrStart, err)
	}
	return r.chown(name)
}

func (r *runner) chown(name string) error {
	if !r.asUser {
		return nil
	}
	if err := os.Chown(name, int(r.uid), int(r.gid)); err != nil {
		return fmt.Errorf("%w: give %s to user %s: %v", ErrStart, name, r.name, err)
	}
	return nil
}
