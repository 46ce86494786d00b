package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-ci/sluice/coordinator"
	sluicev1 "github.com/sluice-ci/sluice/proto/sluice/v1"
	"github.com/sluice-ci/sluice/testreport"
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

// printFailedLogs prints what the failed attempt found (each failed test with its own
// message, from the stage's findings) and the last lines of the output of its failed
// shards, each shard's apart, indented.
func printFailedLogs(ctx context.Context, c *conn, w io.Writer, ev *sluicev1.Event) error {
	var stage *sluicev1.StageState
	actx, cancel := c.apiCtx(ctx)
	run, err := c.api.Get(actx, ev.GetRunId())
	cancel()
	if err == nil {
		stage = stageState(run, ev.GetStage())
		writeFindings(w, run, stage, ev.GetAttempt(), "    ")
	}
	tails := map[int32]*tailBuffer{}
	err = readStream(ctx, c, c.names.LogsStream(), c.names.Log(ev.GetRunId(), ev.GetStage()), false, func(m jetstream.Msg) error {
		var chunk sluicev1.LogChunk
		if err := proto.Unmarshal(m.Data(), &chunk); err != nil {
			return nil // a damaged chunk must not hide the rest of the output
		}
		if chunk.GetAttempt() != ev.GetAttempt() {
			return nil
		}
		tail := tails[chunk.GetShardIndex()]
		if tail == nil {
			tail = newTailBuffer(failedLogLines)
			tail.render = testOutput
			tails[chunk.GetShardIndex()] = tail
		}
		tail.Write(chunk.GetData())
		return nil
	})
	if err != nil {
		return err
	}
	shards := failedShards(stage, tails)
	if len(shards) == 0 {
		fmt.Fprintln(w, "    (no output)")
		return nil
	}
	for _, i := range shards {
		lines, dropped := tails[i].Lines()
		if n := len(stage.GetShards()); n > 1 {
			fmt.Fprintf(w, "    --- shard %d/%d\n", i+1, n)
		}
		if dropped > 0 {
			fmt.Fprintf(w, "    ... %d earlier lines: sluice logs %s %s\n", dropped, ev.GetRunId(), ev.GetStage())
		}
		for _, l := range lines {
			fmt.Fprintf(w, "    | %s\n", l)
		}
	}
	return nil
}

// failedShards are the shards whose output tells why the attempt failed, in order: those
// that did not pass and were not stopped because another failed; all with output when
// the state does not say.
func failedShards(stage *sluicev1.StageState, tails map[int32]*tailBuffer) []int32 {
	var failed, all []int32
	for i := range tails {
		all = append(all, i)
		if sh := shardState(stage, i); sh != nil {
			switch sh.GetOutcome() {
			case sluicev1.Outcome_OUTCOME_PASSED, sluicev1.Outcome_OUTCOME_CANCELLED, sluicev1.Outcome_OUTCOME_UNSPECIFIED:
			default:
				failed = append(failed, i)
			}
		}
	}
	if len(failed) == 0 {
		failed = all
	}
	slices.Sort(failed)
	return failed
}

func stageState(run *sluicev1.RunState, name string) *sluicev1.StageState {
	for _, s := range run.GetStages() {
		if s.GetName() == name {
			return s
		}
	}
	return nil
}

func shardState(stage *sluicev1.StageState, i int32) *sluicev1.ShardState {
	if i < 0 || int(i) >= len(stage.GetShards()) {
		return nil
	}
	return stage.GetShards()[i]
}

// maxShownFindings is how many of a failed stage's findings `run` and `runs show` print.
const maxShownFindings = 10

// writeFindings prints the findings of the stage's attempt (a failed test's: its
// package, name, shard and its own message), each with its excerpt, under indent.
func writeFindings(w io.Writer, run *sluicev1.RunState, stage *sluicev1.StageState, attempt int32, indent string) {
	var fs []*sluicev1.Finding
	for _, f := range stage.GetFindings() {
		if a, ok := f.GetProperties()["attempt"]; !ok || a == strconv.Itoa(int(attempt)) {
			fs = append(fs, f)
		}
	}
	for _, f := range fs[:min(len(fs), maxShownFindings)] {
		where := f.GetFile()
		if f.GetLine() > 0 {
			where += fmt.Sprintf(":%d", f.GetLine())
		}
		line := strings.TrimPrefix(where+": "+oneLine(f.GetMessage()), ": ")
		if sh := f.GetProperties()["shard"]; sh != "" && len(stage.GetShards()) > 1 {
			line += " (shard " + sh + ")"
		}
		fmt.Fprintf(w, "%s%s\n", indent, line)
		for l := range strings.Lines(strings.TrimRight(f.GetExcerpt(), "\n")) {
			fmt.Fprintf(w, "%s    %s\n", indent, strings.TrimRight(l, "\r\n"))
		}
	}
	if more := len(fs) - maxShownFindings; more > 0 {
		fmt.Fprintf(w, "%s... and %d more: sluice runs show %s -o yaml\n", indent, more, run.GetId())
	}
	if n := stage.GetFindingsOmitted(); n > 0 {
		fmt.Fprintf(w, "%s... and %d not kept in the run's state: see the stage's artifacts (sluice artifacts list %s)\n", indent, n, run.GetId())
	}
}

// testOutput renders a line of `go test -json` as the text go test printed: an output
// event's output, nothing for the other events. Any other line is itself.
func testOutput(line string) (string, bool) {
	if !strings.HasPrefix(line, "{") {
		return line, true
	}
	var e testreport.Event
	if err := json.Unmarshal([]byte(line), &e); err != nil || e.Action == "" {
		return line, true
	}
	if e.Action != "output" && e.Action != "build-output" {
		return "", false
	}
	return strings.TrimRight(e.Output, "\r\n"), true
}

// tailBuffer keeps the last n lines written to it, however much is written; render, if
// set, turns each line into what is kept, or drops it.
type tailBuffer struct {
	n       int
	lines   []string
	partial bytes.Buffer
	dropped int
	render  func(string) (string, bool)
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
	if t.render != nil {
		var keep bool
		if line, keep = t.render(line); !keep {
			return
		}
	}
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
