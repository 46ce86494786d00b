package exec

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-ci/sluice/workers/internal/proctest"
)

func TestRunStepOutcomes(t *testing.T) {
	tests := []struct {
		name     string
		command  string
		exitCode int
		err      error
		msg      string
		stdout   string
	}{
		{"success", "echo hello", 0, nil, "", "hello\n"},
		{"non-zero exit", "echo out; exit 3", 3, ErrFailed, "step 1 `echo out; exit 3` exited 3", "out\n"},
		{"command not found", "no-such-command-xyz", 127, ErrFailed, "exited 127", ""},
		{"killed by a signal", "kill -9 $$", -1, ErrFailed, "was killed by a signal", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			r := &Runner{Dir: t.TempDir(), Env: []string{"PATH=/usr/bin:/bin"}, Stdout: &out}
			res, err := r.Run(context.Background(), 1, tc.command)
			if res.ExitCode != tc.exitCode {
				t.Errorf("exit code %d, want %d", res.ExitCode, tc.exitCode)
			}
			if tc.err == nil && err != nil || !errors.Is(err, tc.err) {
				t.Fatalf("err = %v, want %v", err, tc.err)
			}
			if err != nil && !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q does not contain %q", err, tc.msg)
			}
			if out.String() != tc.stdout {
				t.Errorf("stdout %q, want %q", out.String(), tc.stdout)
			}
			if res.Duration <= 0 {
				t.Errorf("duration %v not measured", res.Duration)
			}
		})
	}
}

func TestRunStepsStopsAtFirstFailure(t *testing.T) {
	dir := t.TempDir()
	r := &Runner{Dir: dir, Env: []string{"PATH=/usr/bin:/bin"}}
	results, err := r.RunSteps(context.Background(), []string{"touch one", "exit 2", "touch three"})
	var se *StepError
	if !errors.As(err, &se) || se.Step != 2 || se.ExitCode != 2 {
		t.Fatalf("err = %v, want step 2 exited 2", err)
	}
	if len(results) != 2 || results[0].ExitCode != 0 || results[1].ExitCode != 2 {
		t.Errorf("results = %+v", results)
	}
	if _, err := os.Stat(filepath.Join(dir, "one")); err != nil {
		t.Errorf("step 1 did not run: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "three")); !os.IsNotExist(err) {
		t.Errorf("step 3 ran after step 2 failed")
	}
}

func TestRunStartError(t *testing.T) {
	r := &Runner{Dir: filepath.Join(t.TempDir(), "missing")}
	_, err := r.Run(context.Background(), 1, "true")
	var se *StepError
	if !errors.As(err, &se) || errors.Is(err, ErrFailed) || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("err = %v, want a start error naming the directory", err)
	}
}

// A timed-out or cancelled step takes its whole process tree with it, including children
// that ignore SIGTERM and children that hold stdout open.
func TestKillProcessGroup(t *testing.T) {
	tests := []struct {
		name    string
		command string
		timeout time.Duration // per-step timeout; 0: cancel the context instead
		want    error
	}{
		{"timeout kills tree", "sleep 100 & sleep 100", 300 * time.Millisecond, ErrTimeout},
		{"cancel kills tree", "sleep 100 & sleep 100", 0, ErrCanceled},
		{"SIGTERM ignored", "trap '' TERM; sleep 100 & sleep 100", 300 * time.Millisecond, ErrTimeout},
		{"orphan holds stdout", "(trap '' TERM; exec sleep 100) & exit 0", 0, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			pidFile := filepath.Join(dir, "pgid")
			var out bytes.Buffer
			r := &Runner{
				Dir: dir, Env: []string{"PATH=/usr/bin:/bin"}, Stdout: &out, Stderr: &out,
				StepTimeout: tc.timeout, KillGrace: 300 * time.Millisecond,
			}
			ctx, cancel := context.WithCancelCause(context.Background())
			defer cancel(nil)
			type ret struct {
				res StepResult
				err error
			}
			done := make(chan ret, 1)
			go func() {
				res, err := r.Run(ctx, 1, "echo $$ > pgid; "+tc.command)
				done <- ret{res, err}
			}()
			pgid := proctest.ReadPID(t, pidFile, 5*time.Second)
			cancelled := time.Now()
			if tc.want == ErrCanceled {
				cancel(errors.New("run cancelled by test"))
			}
			got := <-done
			if tc.want == ErrCanceled {
				if waited := time.Since(cancelled); waited > 5*time.Second {
					t.Errorf("Run returned %s after the cancel, want within 5s", waited)
				}
				if !strings.Contains(got.err.Error(), "run cancelled by test") {
					t.Errorf("error %q does not carry the cancel cause", got.err)
				}
			}
			if tc.want == nil && got.err != nil || !errors.Is(got.err, tc.want) {
				t.Fatalf("err = %v, want %v", got.err, tc.want)
			}
			if got.res.Step != 1 || got.res.Duration <= 0 {
				t.Errorf("result %+v", got.res)
			}
			proctest.WaitGone(t, pgid, 5*time.Second)
		})
	}
}

// A context that is done before the step starts runs nothing.
func TestRunAfterDeadline(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Nanosecond)
	defer cancel()
	<-ctx.Done()
	dir := t.TempDir()
	r := &Runner{Dir: dir}
	_, err := r.Run(ctx, 1, "touch ran")
	if !errors.Is(err, ErrTimeout) || !strings.Contains(err.Error(), "task deadline") {
		t.Fatalf("err = %v, want a task-deadline timeout", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "ran")); !os.IsNotExist(err) {
		t.Error("the step ran")
	}
}

// Secrets never reach the log, also when the step prints one in two writes.
func TestRunRedactsSecrets(t *testing.T) {
	var out, log bytes.Buffer
	stdout := NewRedactor(&out, []string{"hunter2-secret"})
	r := &Runner{
		Dir: t.TempDir(), Env: []string{"PATH=/usr/bin:/bin", "TOKEN=hunter2-secret"},
		Stdout: stdout, Log: &log,
	}
	_, err := r.Run(context.Background(), 1, `echo "token is $TOKEN"; printf 'hunter2'; sleep 0.2; printf -- '-secret done\n'`)
	if err != nil {
		t.Fatal(err)
	}
	if err := stdout.Close(); err != nil {
		t.Fatal(err)
	}
	if want := "token is ***\n*** done\n"; out.String() != want {
		t.Errorf("stdout %q, want %q", out.String(), want)
	}
	if !strings.Contains(log.String(), "step 1: echo") || !strings.Contains(log.String(), "exited 0") {
		t.Errorf("log lines %q", log.String())
	}
}
