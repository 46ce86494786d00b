// Package exec runs the `run:` steps of a task: each command under /bin/sh -c in the task's
// source tree, with a clean environment, in its own process group so that a timeout or a
// cancel kills everything the step started.
package exec

import (
	"context"
	"errors"
	"fmt"
	"io"
	osexec "os/exec"
	"runtime"
	"time"

	"github.com/sluice-ci/sluice/internal/procgroup"
)

// DefaultKillGrace is how long a step's process group has between SIGTERM and SIGKILL.
const DefaultKillGrace = 2 * time.Second

// StepResult is what a finished step reports.
type StepResult struct {
	Step     int // 1-based position in the stage's run list
	Command  string
	ExitCode int // -1 when killed by a signal or never started
	Duration time.Duration
}

// StepError explains a step that did not succeed. Err is ErrFailed, ErrTimeout, ErrCanceled
// or why the step could not start; Cause is the context's cancel cause, if one was given.
// errors.Is matches both.
type StepError struct {
	StepResult
	Err     error
	Cause   error
	Timeout time.Duration // the per-step timeout that passed; 0 when it was the ctx deadline
}

func (e *StepError) Error() string {
	prefix := fmt.Sprintf("step %d `%s`", e.Step, e.Command)
	switch {
	case errors.Is(e.Err, ErrFailed) && e.ExitCode >= 0:
		return fmt.Sprintf("%s exited %d", prefix, e.ExitCode)
	case errors.Is(e.Err, ErrFailed):
		return prefix + " was killed by a signal"
	case errors.Is(e.Err, ErrTimeout) && e.Timeout > 0:
		return fmt.Sprintf("%s timed out after %s", prefix, e.Timeout)
	case errors.Is(e.Err, ErrTimeout):
		return prefix + " timed out: the task deadline passed"
	case errors.Is(e.Err, ErrCanceled) && e.Cause != nil:
		return fmt.Sprintf("%s cancelled: %v", prefix, e.Cause)
	case errors.Is(e.Err, ErrCanceled):
		return prefix + " cancelled"
	}
	return fmt.Sprintf("%s: %v", prefix, e.Err)
}

func (e *StepError) Unwrap() []error {
	if e.Cause != nil {
		return []error{e.Err, e.Cause}
	}
	return []error{e.Err}
}

// Runner runs commands for one task. The zero value runs in the current directory with an
// empty environment and discards output.
type Runner struct {
	Dir    string
	Env    []string // complete environment; see TaskEnv
	Stdout io.Writer
	Stderr io.Writer
	// Log receives the runner's own lines (which step starts, how it ended); nil: none.
	Log io.Writer
	// StepTimeout bounds each step; 0: only the context's deadline.
	StepTimeout time.Duration
	// KillGrace is the time between SIGTERM and SIGKILL to the process group; 0: DefaultKillGrace.
	KillGrace time.Duration
	// Sandbox, when set, runs the steps apart from the worker (see Sandbox); nil runs them
	// as the worker's own user.
	Sandbox *Sandbox
}

// RunSteps runs commands in order and stops at the first that does not succeed, returning
// the results of the steps that ran and, for the last, a *StepError.
func (r *Runner) RunSteps(ctx context.Context, commands []string) ([]StepResult, error) {
	results := make([]StepResult, 0, len(commands))
	for i, c := range commands {
		res, err := r.Run(ctx, i+1, c)
		results = append(results, res)
		if err != nil {
			return results, err
		}
	}
	return results, nil
}

// Run runs one command as step number step. A non-nil error is a *StepError.
func (r *Runner) Run(ctx context.Context, step int, command string) (StepResult, error) {
	res := StepResult{Step: step, Command: command, ExitCode: -1}
	r.logf("step %d: %s\n", step, command)
	stepCtx, cancel := ctx, context.CancelFunc(func() {})
	if r.StepTimeout > 0 {
		stepCtx, cancel = context.WithTimeout(ctx, r.StepTimeout)
	}
	defer cancel()
	if stepCtx.Err() != nil {
		return res, r.interrupted(ctx, res)
	}
	grace := r.KillGrace
	if grace <= 0 {
		grace = DefaultKillGrace
	}

	script := command
	if r.Sandbox != nil {
		// What the step writes in the caches its pipeline shares stays writable for the
		// other step users of the host.
		script = "umask 0002\n" + command
		// The kernel ends the step if the thread that started it ends: keep it.
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
	}
	cmd := osexec.CommandContext(stepCtx, "/bin/sh", "-c", script)
	cmd.Dir = r.Dir
	cmd.Env = r.Env
	if cmd.Env == nil {
		// A nil Env would inherit the worker's environment.
		cmd.Env = []string{}
	}
	cmd.Stdout, cmd.Stderr = r.Stdout, r.Stderr
	// The step leads its own process group, so one signal reaches everything it started:
	// SIGTERM when the context ends, SIGKILL grace later.
	group := procgroup.OnCancel(cmd, grace)
	r.Sandbox.Prepare(cmd)
	// Children that outlive the shell and hold stdout open must not hang Wait: the pipes are
	// closed grace after the shell exits or the context ends.
	cmd.WaitDelay = grace

	start := time.Now()
	if err := cmd.Start(); err != nil {
		res.Duration = time.Since(start)
		return res, &StepError{StepResult: res, Err: fmt.Errorf("start /bin/sh in %q: %w", r.Dir, err)}
	}
	waitErr := cmd.Wait()
	res.Duration = time.Since(start)
	// The step's last line ends with it: it must not run into the next line written.
	for _, w := range []io.Writer{r.Stdout, r.Stderr} {
		if f, ok := w.(interface{ Flush() error }); ok {
			_ = f.Flush()
		}
	}
	// Whatever the step left running in its group (background jobs, daemons) does not outlive
	// it.
	group.Kill()
	res.ExitCode = cmd.ProcessState.ExitCode()

	if cmd.ProcessState.Success() {
		if errors.Is(waitErr, osexec.ErrWaitDelay) {
			r.logf("step %d: processes it left running held its output open; killed them\n", step)
		}
		r.logf("step %d: exited 0 in %s\n", step, res.Duration.Round(time.Millisecond))
		return res, nil
	}
	if group.Cancelled() {
		err := r.interrupted(ctx, res)
		r.logf("%v\n", err)
		return res, err
	}
	err := &StepError{StepResult: res, Err: ErrFailed}
	r.logf("%v (%s)\n", err, res.Duration.Round(time.Millisecond))
	return res, err
}

// interrupted classifies a step stopped by its context: a cancelled ctx is a cancellation,
// any passed deadline (the step's or the task's) a timeout.
func (r *Runner) interrupted(ctx context.Context, res StepResult) error {
	if errors.Is(ctx.Err(), context.Canceled) {
		e := &StepError{StepResult: res, Err: ErrCanceled}
		if cause := context.Cause(ctx); cause != nil && cause != context.Canceled {
			e.Cause = cause
		}
		return e
	}
	e := &StepError{StepResult: res, Err: ErrTimeout}
	if ctx.Err() == nil {
		e.Timeout = r.StepTimeout
	}
	return e
}

func (r *Runner) logf(format string, args ...any) {
	if r.Log != nil {
		fmt.Fprintf(r.Log, format, args...)
	}
}
