// Command sluice is the one binary of Sluice: the embedded dev fleet, the coordinator, the
// workers, and the client commands that submit and inspect runs. See `sluice --help`.
package main

import (
	"context"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// The first signal cancels ctx for an orderly stop; restoring the default handling then
	// lets a second Ctrl-C kill a process that is slow to stop.
	context.AfterFunc(ctx, stop)
	code := execute(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// execute runs the command line args and returns the process exit code. Errors are reported
// on stderr here, in one place, so every command reports them the same way.
func execute(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := newRootCmd(stdout, stderr)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	reportError(stderr, err)
	return exitCode(err)
}
