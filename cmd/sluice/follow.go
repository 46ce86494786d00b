package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-ci/sluice/coordinator"
	sluicev1 "github.com/sluice-ci/sluice/proto/sluice/v1"
)

// Event types the CLI reacts to (the full list is in proto/sluice/v1/event.proto).
const (
	evRunPassed    = "run.passed"
	evRunFailed    = "run.failed"
	evRunCancelled = "run.cancelled"
	evStageFailed  = "stage.failed"
)

// failedLogLines is how much of a failed stage's output `run` prints; `sluice logs` has all.
const failedLogLines = 40

// followRun prints the run's transitions from the events stream, from its first event, and
// the tail of the logs of every stage that fails, until the run ends. It returns the run's
// final status, or ctx's error when ctx ends first.
func followRun(ctx context.Context, c *conn, run *sluicev1.RunState, w io.Writer) (sluicev1.RunStatus, error) {
	p := newProgress(w, run.GetSpec())
	final := sluicev1.RunStatus_RUN_STATUS_UNSPECIFIED
	filter := c.names.EventFilter(run.GetPipeline(), run.GetId())
	err := readStream(ctx, c, c.names.EventsStream(), filter, true, func(m jetstream.Msg) error {
		var ev sluicev1.Event
		if err := coordinator.DecodeEvent(m.Headers(), m.Data(), &ev); err != nil {
			fmt.Fprintf(w, "(skipped an undecodable event on %s: %v)\n", m.Subject(), err)
			return nil
		}
		p.event(&ev)
		switch ev.GetType() {
		case evStageFailed:
			if err := printFailedLogs(ctx, c, w, &ev); err != nil {
				fmt.Fprintf(w, "    (logs unavailable: %v)\n", err)
			}
		case evRunPassed:
			final = sluicev1.RunStatus_RUN_STATUS_PASSED
		case evRunFailed:
			final = sluicev1.RunStatus_RUN_STATUS_FAILED
		case evRunCancelled:
			final = sluicev1.RunStatus_RUN_STATUS_CANCELLED
		}
		if final != sluicev1.RunStatus_RUN_STATUS_UNSPECIFIED {
			return errStopReading
		}
		return nil
	})
	return final, err
}

// progress prints one aligned line per transition of a run: time, stage, status, attempt,
// and the coordinator's message (the duration of a finished stage, the reason of a failure).
type progress struct {
	w     io.Writer
	width int
}

func newProgress(w io.Writer, spec *sluicev1.PipelineSpec) *progress {
	width := len("run")
	for _, s := range spec.GetStages() {
		width = max(width, len(s.GetName()))
	}
	return &progress{w: w, width: width}
}

func (p *progress) event(ev *sluicev1.Event) {
	scope, status, _ := strings.Cut(ev.GetType(), ".")
	name := ev.GetStage()
	if scope == "run" || name == "" {
		name = scope
	}
	attempt := ""
	if n := ev.GetAttempt(); n > 0 {
		attempt = fmt.Sprintf("#%d", n)
	}
	msg := eventMessage(ev)
	line := fmt.Sprintf("%s  %-*s  %-16s  %-3s  %s", ev.GetTime().AsTime().Local().Format("15:04:05"), p.width, name, status, attempt, msg)
	fmt.Fprintln(p.w, strings.TrimRight(line, " "))
}

// eventMessage is the event's message on one line, without the "attempt N" it may start
// with: the attempt has a field of its own in every rendering.
func eventMessage(ev *sluicev1.Event) string {
	msg := oneLine(ev.GetMessage())
	if n := ev.GetAttempt(); n > 0 {
		// The attempt has its own column; ", 4 shards" reads as "4 shards".
		msg = strings.TrimLeft(strings.TrimPrefix(msg, fmt.Sprintf("attempt %d", n)), " ,;:")
	}
	return msg
}

// printFailedLogs prints the last lines of the failed attempt's output, indented.
func printFailedLogs(ctx context.Context, c *conn, w io.Writer, ev *sluicev1.Event) error {
	tail := newTailBuffer(failedLogLines)
	err := readStream(ctx, c, c.names.LogsStream(), c.names.Log(ev.GetRunId(), ev.GetStage()), false, func(m jetstream.Msg) error {
		var chunk sluicev1.LogChunk
		if err := proto.Unmarshal(m.Data(), &chunk); err != nil {
			return nil // a damaged chunk must not hide the rest of the output
		}
		if chunk.GetAttempt() == ev.GetAttempt() {
			tail.Write(chunk.GetData())
		}
		return nil
	})
	if err != nil {
		return err
	}
	lines, dropped := tail.Lines()
	if len(lines) == 0 {
		fmt.Fprintln(w, "    (no output)")
		return nil
	}
	if dropped > 0 {
		fmt.Fprintf(w, "    ... %d earlier lines: sluice logs %s %s\n", dropped, ev.GetRunId(), ev.GetStage())
	}
	for _, l := range lines {
		fmt.Fprintf(w, "    | %s\n", l)
	}
	return nil
}

// tailBuffer keeps the last n lines written to it, however much is written.
type tailBuffer struct {
	n       int
	lines   []string
	partial bytes.Buffer
	dropped int
}

func newTailBuffer(n int) *tailBuffer { return &tailBuffer{n: n} }

func (t *tailBuffer) Write(b []byte) {
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			t.partial.Write(b)
			return
		}
		t.partial.Write(b[:i])
		t.push(strings.TrimRight(t.partial.String(), "\r"))
		t.partial.Reset()
		b = b[i+1:]
	}
}

func (t *tailBuffer) push(line string) {
	t.lines = append(t.lines, line)
	if len(t.lines) > t.n {
		t.lines = t.lines[1:]
		t.dropped++
	}
}

// Lines returns the kept lines (an unterminated last line included) and how many were dropped.
func (t *tailBuffer) Lines() ([]string, int) {
	if t.partial.Len() > 0 {
		t.push(t.partial.String())
		t.partial.Reset()
	}
	return t.lines, t.dropped
}

// errRunEnded ends a --follow whose run has ended.
var errRunEnded = errors.New("the run ended")

// runEndPoll is how often a --follow of one run checks whether the run has ended, and
// runEndGrace how long it then still reads, for what the end's last publishes carry.
const (
	runEndPoll  = time.Second
	runEndGrace = time.Second
)

// untilRunEnds is ctx, ended with errRunEnded as its cause runEndGrace after the run is
// seen finished. stop releases it.
func untilRunEnds(ctx context.Context, c *conn, run string) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(runEndPoll)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			actx, acancel := c.apiCtx(ctx)
			st, err := c.api.Get(actx, run)
			acancel()
			if err == nil && st.GetStatus().Terminal() {
				select {
				case <-time.After(runEndGrace):
					cancel(errRunEnded)
				case <-ctx.Done():
				}
				return
			}
		}
	}()
	return ctx, func() {
		cancel(context.Canceled)
		<-done
	}
}

// followEnded reports whether err is how a --follow ends on purpose: Ctrl-C, or its run
// ended.
func followEnded(ctx context.Context, err error) bool {
	return err != nil && (errors.Is(context.Cause(ctx), errRunEnded) || errors.Is(err, context.Canceled))
}
