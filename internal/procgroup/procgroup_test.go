//go:build linux

package procgroup

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// live lists the processes of group pgid that are not zombies (an orphan's zombie waits
// for a reaper that may not come in a container; it runs nothing).
func live(t *testing.T, pgid int) []int {
	t.Helper()
	stats, err := filepath.Glob("/proc/[0-9]*/stat")
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, f := range stats {
		data, err := os.ReadFile(f)
		if err != nil {
			continue // it ended meanwhile
		}
		// pid (comm) state ppid pgrp ...; comm may hold spaces and parentheses.
		fields := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+1:]))
		if len(fields) < 3 || fields[0] == "Z" || fields[0] == "X" {
			continue
		}
		if pgrp, _ := strconv.Atoi(fields[2]); pgrp == pgid {
			pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(f)))
			pids = append(pids, pid)
		}
	}
	return pids
}

// startTree starts sh running script (which must print its background child's pid first)
// in a group of its own and returns once the child runs.
func startTree(t *testing.T, cmd *exec.Cmd) (child int) {
	t.Helper()
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("read the background child's pid: %v", err)
	}
	if child, err = strconv.Atoi(strings.TrimSpace(line)); err != nil {
		t.Fatalf("child pid %q: %v", line, err)
	}
	return child
}

// Each way of ending a group ends all of it: the shell and its background child, whether
// they heed SIGTERM or not.
func TestGroupEnds(t *testing.T) {
	const (
		heeds   = "sleep 300 & echo $!; sleep 300"
		ignores = "trap '' TERM; sleep 300 & echo $!; sleep 300"
		grace   = 300 * time.Millisecond
	)
	for _, tc := range []struct {
		name   string
		script string
		// end ends the group and returns once cmd.Wait has returned.
		end func(t *testing.T, cmd *exec.Cmd, cancel context.CancelFunc)
		// setup prepares cmd; nil: Set.
		setup   func(cmd *exec.Cmd) *Stopper
		minTime time.Duration // ending takes at least this (the grace before SIGKILL)
	}{
		{name: "Kill", script: ignores, end: func(t *testing.T, cmd *exec.Cmd, _ context.CancelFunc) {
			if err := Kill(cmd); err != nil {
				t.Fatal(err)
			}
			_ = cmd.Wait()
		}},
		{name: "Stop, SIGTERM heeded", script: heeds, end: stopWith(grace * 100)},
		{name: "Stop, SIGTERM ignored: SIGKILL after the grace", script: ignores, end: stopWith(grace), minTime: grace},
		{name: "OnCancel without grace", script: ignores, setup: func(cmd *exec.Cmd) *Stopper { return OnCancel(cmd, 0) },
			end: cancelWith()},
		{name: "OnCancel, SIGTERM heeded", script: heeds, setup: func(cmd *exec.Cmd) *Stopper { return OnCancel(cmd, grace*100) },
			end: cancelWith()},
		{name: "OnCancel, SIGTERM ignored: SIGKILL after the grace", script: ignores,
			setup: func(cmd *exec.Cmd) *Stopper { return OnCancel(cmd, grace) }, end: cancelWith(), minTime: grace},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			cmd := exec.CommandContext(ctx, "/bin/sh", "-c", tc.script)
			var s *Stopper
			if tc.setup != nil {
				s = tc.setup(cmd)
			} else {
				Set(cmd)
			}
			child := startTree(t, cmd)
			pgid := cmd.Process.Pid
			if got := live(t, pgid); len(got) < 2 {
				t.Fatalf("group %d runs %v, want the shell and its child %d", pgid, got, child)
			}
			start := time.Now()
			tc.end(t, cmd, cancel)
			if took := time.Since(start); took < tc.minTime {
				t.Errorf("ended in %s, before the %s grace", took, tc.minTime)
			}
			if s != nil {
				if !s.Cancelled() {
					t.Error("Cancelled() = false after the context ended")
				}
				s.Kill()
			}
			deadline := time.Now().Add(5 * time.Second)
			for left := live(t, pgid); len(left) > 0; left = live(t, pgid) {
				if time.Now().After(deadline) {
					t.Fatalf("group %d still runs %v (background child %d)", pgid, left, child)
				}
				time.Sleep(10 * time.Millisecond)
			}
		})
	}
}

func stopWith(grace time.Duration) func(*testing.T, *exec.Cmd, context.CancelFunc) {
	return func(t *testing.T, cmd *exec.Cmd, _ context.CancelFunc) {
		exited := make(chan struct{})
		go func() {
			_ = cmd.Wait()
			close(exited)
		}()
		Stop(cmd, syscall.SIGTERM, exited, grace)
	}
}

func cancelWith() func(*testing.T, *exec.Cmd, context.CancelFunc) {
	return func(t *testing.T, cmd *exec.Cmd, cancel context.CancelFunc) {
		cancel()
		_ = cmd.Wait()
	}
}

// Set merges into the attributes a sandbox sets on the same command.
func TestSetKeepsAttributes(t *testing.T) {
	cred := &syscall.Credential{Uid: 1234, Gid: 1234}
	cmd := exec.Command("/bin/true")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Cloneflags: syscall.CLONE_NEWPID, Pdeathsig: syscall.SIGKILL}
	Set(cmd)
	a := cmd.SysProcAttr
	if !a.Setpgid || a.Pgid != 0 || a.Credential != cred || a.Cloneflags != syscall.CLONE_NEWPID || a.Pdeathsig != syscall.SIGKILL {
		t.Fatalf("SysProcAttr after Set: %+v", a)
	}
	bare := exec.Command("/bin/true")
	if Set(bare); bare.SysProcAttr == nil || !bare.SysProcAttr.Setpgid {
		t.Fatalf("Set without SysProcAttr: %+v", bare.SysProcAttr)
	}
}

// Signalling a command that has not started is an error, not a signal to group 0 (this
// process's own).
func TestSignalNotStarted(t *testing.T) {
	if err := Kill(exec.Command("/bin/true")); err == nil {
		t.Fatal("Kill of a command that did not start: no error")
	}
}
