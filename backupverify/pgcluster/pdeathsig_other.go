//go:build unix && !linux

package pgcluster

import "syscall"

// setParentDeathSignal: only Linux can tie the server's life to this process's.
func setParentDeathSignal(*syscall.SysProcAttr) {}
