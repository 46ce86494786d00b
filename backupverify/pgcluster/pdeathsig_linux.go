package pgcluster

import "syscall"

// setParentDeathSignal makes the kernel send SIGQUIT (PostgreSQL's immediate shutdown) to
// the server when this process dies, so a crashed Sluice leaves no server behind.
func setParentDeathSignal(a *syscall.SysProcAttr) { a.Pdeathsig = syscall.SIGQUIT }
