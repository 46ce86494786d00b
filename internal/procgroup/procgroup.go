//go:build unix

// Package procgroup runs a command as the leader of a process group of its own and ends
// the whole group: the command and whatever it started (background jobs, a server's
// workers) that did not leave the group with setsid. One signal to the group reaches them
// all, so nothing a command started outlives it.
package procgroup

import (
	"fmt"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// Set makes cmd start as the leader of a new process group. The rest of cmd.SysProcAttr
// (credentials, clone flags, a parent-death signal) is kept.
func Set(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	cmd.SysProcAttr.Pgid = 0
}

// Signal sends sig to every process of the group cmd leads; cmd must have started with
// Set. ESRCH means nothing of the group is left.
func Signal(cmd *exec.Cmd, sig syscall.Signal) error {
	if cmd.Process == nil {
		return fmt.Errorf("signal the process group of %s: not started", cmd.Path)
	}
	if err := syscall.Kill(-cmd.Process.Pid, sig); err != nil {
		return fmt.Errorf("signal the process group %d: %w", cmd.Process.Pid, err)
	}
	return nil
}

// Kill sends SIGKILL to the group cmd leads.
func Kill(cmd *exec.Cmd) error { return Signal(cmd, syscall.SIGKILL) }

// Stop ends the group cmd leads: sig to all of it, then SIGKILL when exited (closed once
// cmd.Wait has returned) is not closed within grace. It returns once exited is closed.
func Stop(cmd *exec.Cmd, sig syscall.Signal, exited <-chan struct{}, grace time.Duration) {
	// Errors are ignored: the group may be gone already.
	_ = Signal(cmd, sig)
	select {
	case <-exited:
	case <-time.After(grace):
		_ = Kill(cmd)
		<-exited
	}
}

// Stopper ends a command's process group when the command's context ends.
type Stopper struct {
	cmd   *exec.Cmd
	grace time.Duration

	mu        sync.Mutex
	cancelled bool
	hardKill  *time.Timer
}

// OnCancel makes cmd, made with exec.CommandContext, start in a process group of its own
// (Set) and end the group when its context ends: SIGTERM to all of it, then SIGKILL grace
// later; with grace <= 0, SIGKILL at once. It sets cmd.Cancel; cmd.WaitDelay stays the
// caller's.
func OnCancel(cmd *exec.Cmd, grace time.Duration) *Stopper {
	Set(cmd)
	s := &Stopper{cmd: cmd, grace: grace}
	cmd.Cancel = s.cancel
	return s
}

func (s *Stopper) cancel() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cancelled = true
	// Errors are ignored: the group may be gone already, and Wait reports the outcome.
	if s.grace <= 0 {
		_ = Kill(s.cmd)
		return nil
	}
	_ = Signal(s.cmd, syscall.SIGTERM)
	s.hardKill = time.AfterFunc(s.grace, func() { _ = Kill(s.cmd) })
	return nil
}

// Cancelled reports whether the end of the context has stopped the group.
func (s *Stopper) Cancelled() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cancelled
}

// Kill kills what is left of the group at once and drops a pending SIGKILL, which could
// otherwise reach a later group that reuses the id. Call it once Wait has returned.
func (s *Stopper) Kill() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.hardKill != nil {
		s.hardKill.Stop()
	}
	// ESRCH, nothing left, is the common case.
	_ = Kill(s.cmd)
}
