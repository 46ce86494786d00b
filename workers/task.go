package workers

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluice-ci/sluice/internal/bus"
	sluicev1 "github.com/sluice-ci/sluice/proto/sluice/v1"
	"github.com/sluice-ci/sluice/workers/exec"
)

// Task is what a Handler gets: the decoded task, its source tree, and the runtime's
// services. Output written to Stdout, Stderr and Log is streamed to the stage's logs with
// every secret value redacted.
type Task struct {
	Task     *sluicev1.Task
	Dir      string   // the extracted source tree (empty when the task has no source)
	Env      []string // the clean environment of the task's processes (exec.TaskEnv)
	Stdout   io.Writer
	Stderr   io.Writer
	Log      io.Writer // the worker's own lines, the "sluice" log stream
	Exec     *exec.Runner
	Logger   *slog.Logger
	Delivery int // 1 on the first delivery of the task
	// Sandbox runs the task's processes apart from the worker; nil: as the worker's user.
	// Engines that start programs on the task's input (k6 on its script) use it too.
	Sandbox *exec.Sandbox
	// TmpDir is the task's scratch directory, owned by the sandbox's user.
	TmpDir string

	artifacts jetstream.ObjectStore
	// artifactPrefix names this delivery's objects: <run>/<stage>/<attempt>.<shard>.<delivery>/.
	artifactPrefix string
	// secrets the worker granted the task, by name; secretValues every value, for masking.
	secrets      map[string]string
	secretValues []string
}

// Secret is a secret the worker granted the task.
func (t *Task) Secret(name string) (string, bool) {
	v, ok := t.secrets[name]
	return v, ok
}

// artifactPrefix is where one delivery of a task stores its artifacts. No two deliveries
// share it, so storing never replaces an object, which a worker may not do: replacing means
// purging the old chunks, and the server lets no worker purge what others stored.
func artifactPrefix(t *sluicev1.Task, delivery int) string {
	return fmt.Sprintf("%s/%s/%d.%d.%d/", t.GetRunId(), t.GetStage(), t.GetAttempt(), t.GetShardIndex(), delivery)
}

// RunSteps runs commands with t.Exec and maps the outcome: all exit 0 is PASSED, a non-zero
// exit FAILED ("step 2 `go test ./...` exited 1"), a passed deadline TIMED_OUT, a cancel
// CANCELLED, a step that cannot start ERROR. Each step's duration is a metric.
func (t *Task) RunSteps(ctx context.Context, commands []string) *sluicev1.Result {
	steps, err := t.Exec.RunSteps(ctx, commands)
	res := &sluicev1.Result{Outcome: sluicev1.Outcome_OUTCOME_PASSED}
	for _, s := range steps {
		AddStep(res, s)
	}
	if err == nil {
		res.Message = StepsPassed(len(steps))
		return res
	}
	res.Outcome, res.Message = StepOutcome(err), err.Error()
	return res
}

// AddStep records a step that ran in res: its duration metric and its exit code.
func AddStep(res *sluicev1.Result, s exec.StepResult) {
	res.Metrics = append(res.Metrics, &sluicev1.Metric{
		Name: "step_duration_seconds", Value: s.Duration.Seconds(), Unit: "s",
		Labels: map[string]string{"step": fmt.Sprint(s.Step), "command": s.Command},
	})
	res.ExitCode = int32(s.ExitCode)
}

// StepsPassed is the message of n steps that all passed.
func StepsPassed(n int) string {
	if n == 1 {
		return "1 step passed"
	}
	return fmt.Sprintf("%d steps passed", n)
}

// StepOutcome is the outcome a step's error from exec.Runner makes.
func StepOutcome(err error) sluicev1.Outcome {
	switch {
	case err == nil:
		return sluicev1.Outcome_OUTCOME_PASSED
	case errors.Is(err, exec.ErrFailed):
		return sluicev1.Outcome_OUTCOME_FAILED
	case errors.Is(err, exec.ErrTimeout):
		return sluicev1.Outcome_OUTCOME_TIMED_OUT
	case errors.Is(err, exec.ErrCanceled):
		return sluicev1.Outcome_OUTCOME_CANCELLED
	}
	return sluicev1.Outcome_OUTCOME_ERROR
}

// UploadArtifact stores r in the artifacts object store under this delivery's prefix
// (<run>/<stage>/<attempt>.<shard>.<delivery>/<name>) and returns its reference, whose name
// is name; name may contain slashes ("reports/junit.xml").
func (t *Task) UploadArtifact(ctx context.Context, name, contentType string, r io.Reader) (*sluicev1.ArtifactRef, error) {
	clean := path.Clean(name)
	if name == "" || path.IsAbs(clean) || clean == ".." || strings.HasPrefix(clean, "../") {
		return nil, fmt.Errorf("%w: %q", ErrBadArtifactName, name)
	}
	object := t.artifactPrefix + clean
	meta := jetstream.ObjectMeta{Name: object, Description: "artifact of stage " + t.Task.GetStage()}
	if contentType != "" {
		meta.Headers = nats.Header{"Content-Type": []string{contentType}}
	}
	// Artifacts are masked like the logs: a report quotes the output it summarises.
	pr, pw := io.Pipe()
	go func() {
		red := exec.NewRedactor(pw, t.secretValues)
		_, err := io.Copy(red, r)
		if err == nil {
			err = red.Close()
		}
		pw.CloseWithError(err)
	}()
	info, err := t.artifacts.Put(ctx, meta, pr)
	_ = pr.Close()
	if err != nil {
		return nil, fmt.Errorf("upload artifact %s: %w", object, err)
	}
	return &sluicev1.ArtifactRef{
		Name: clean, Object: object, ContentType: contentType, Size: int64(info.Size),
		Digest: bus.ObjectDigest(info.Digest),
	}, nil
}
