package workers

import (
	"bytes"
	osexec "os/exec"
	"strconv"
	"strings"
	"testing"

	sluicev1 "github.com/sluice-ci/sluice/proto/sluice/v1"
)

// TestOneStageCannotFloodTheLogs: a step printing 1 GiB keeps the logs stream to its limit
// with a marker saying what was dropped, and another run's logs stay readable.
func TestOneStageCannotFloodTheLogs(t *testing.T) {
	h := newHarness(t)
	h.publish(t, newTask("quiet", "echo the quiet run, its only line"))
	h.publish(t, newTask("flood", "yes 'a line of flood output' | head -c 1073741824"))
	const limit = 1 << 20
	h.start(t, Config{LogLimit: limit})
	if res := h.final(t, "quiet"); res.GetOutcome() != sluicev1.Outcome_OUTCOME_PASSED {
		t.Fatalf("quiet: %s %q", res.GetOutcome(), res.GetMessage())
	}
	res := h.final(t, "flood")
	if res.GetOutcome() != sluicev1.Outcome_OUTCOME_PASSED {
		t.Fatalf("flood: %s %q", res.GetOutcome(), res.GetMessage())
	}
	if got := res.GetDetail()["logs_dropped_bytes"]; got != strconv.Itoa(1<<30-limit) {
		t.Fatalf("the result says %q bytes were dropped, want %d", got, 1<<30-limit)
	}
	var stored int
	var sluice strings.Builder
	for _, c := range h.logChunks(t, "flood", "build") {
		if c.GetStream() == StreamSluice {
			sluice.Write(c.GetData())
			continue
		}
		stored += len(c.GetData())
	}
	if stored > limit+1 {
		t.Fatalf("the flood stored %d bytes of output, the limit is %d", stored, limit)
	}
	for _, want := range []string{"output truncated: the steps wrote more than the 1.0 MiB log limit", strconv.Itoa(1<<30-limit) + " bytes of output dropped"} {
		if !strings.Contains(sluice.String(), want) {
			t.Errorf("the worker's lines do not say %q:\n%s", want, sluice.String())
		}
	}
	var quiet bytes.Buffer
	for _, c := range h.logChunks(t, "quiet", "build") {
		if c.GetStream() == StreamStdout {
			quiet.Write(c.GetData())
		}
	}
	if quiet.String() != "the quiet run, its only line\n" {
		t.Fatalf("the other run's logs: %q", quiet.String())
	}
}

// Output that reaches the limit exactly at the end of one write, and goes on in the next,
// is truncated with the marker all the same.
func TestTheLogLimitMarkerComesWhereOutputStops(t *testing.T) {
	h := newHarness(t)
	h.publish(t, newTask("exact", "head -c 4096 /dev/zero | tr '\\0' a; sleep 0.2; echo after the limit"))
	h.start(t, Config{LogLimit: 4096})
	if res := h.final(t, "exact"); res.GetDetail()["logs_dropped_bytes"] != strconv.Itoa(len("after the limit\n")) {
		t.Fatalf("dropped %q bytes, want the last line's", res.GetDetail()["logs_dropped_bytes"])
	}
	var sluice strings.Builder
	for _, c := range h.logChunks(t, "exact", "build") {
		if c.GetStream() == StreamSluice {
			sluice.Write(c.GetData())
		}
	}
	if !strings.Contains(sluice.String(), "output truncated: the steps wrote more than the 4.0 KiB log limit") {
		t.Fatalf("no truncation marker in the worker's lines:\n%s", sluice.String())
	}
}

// TestWorkerLinesNeverSplitAStepLine reads the logs as `sluice logs` prints them (every
// stream in chunk order) and expects each step's lines whole, though a secret makes the
// redactor hold back output and the steps end without a newline.
func TestWorkerLinesNeverSplitAStepLine(t *testing.T) {
	t.Setenv("TEST_SECRET", "a-long-secret-value")
	h := newHarness(t)
	task := newTask("lines",
		`printf 'no newline at the end'`,
		`printf 'half'; sleep 0.5; echo ' and half'; printf 'err without newline' >&2`)
	task.Spec.Secrets = []string{"TEST_SECRET"}
	h.publish(t, task)
	h.start(t, Config{Secrets: &Secrets{Grants: []SecretGrant{{Name: "TEST_SECRET"}}}})
	if res := h.final(t, "lines"); res.GetOutcome() != sluicev1.Outcome_OUTCOME_PASSED {
		t.Fatalf("%s %q", res.GetOutcome(), res.GetMessage())
	}
	var all bytes.Buffer
	for _, c := range h.logChunks(t, "lines", "build") {
		all.Write(c.GetData())
	}
	lines := strings.Split(all.String(), "\n")
	for _, want := range []string{"no newline at the end", "half and half", "err without newline"} {
		found := false
		for _, l := range lines {
			found = found || l == want
		}
		if !found {
			t.Errorf("no whole line %q in:\n%s", want, all.String())
		}
	}
	for _, l := range lines {
		if strings.Contains(l, "step ") && !strings.HasPrefix(l, "step ") {
			t.Errorf("a worker line shares a line with step output: %q", l)
		}
	}
}

// Chunks end at line boundaries: every chunk ends with a newline, but for the pieces of a
// line longer than a chunk, so a reader that prefixes or separates chunks (one shard's
// from another's) never cuts a line. The output reassembles to exactly what the step wrote.
func TestLogChunksEndAtLineBoundaries(t *testing.T) {
	for _, tc := range []struct {
		name, step string
	}{
		{"many short lines in one write", `awk 'BEGIN { for (i = 0; i < 20000; i++) printf "line %d of the output, padded to vary: %*s\n", i, i % 97, "" }'`},
		{"lines of every length in small writes", `i=0; while [ $i -lt 150 ]; do head -c $((i * 211)) /dev/zero | tr '\0' x; echo; i=$((i + 1)); done`},
		{"a line longer than a chunk among short ones", `echo before; head -c 100000 /dev/zero | tr '\0' y; echo; echo after`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.publish(t, newTask("chunks", tc.step))
			h.start(t, Config{})
			if res := h.final(t, "chunks"); res.GetOutcome() != sluicev1.Outcome_OUTCOME_PASSED {
				t.Fatalf("%s %q", res.GetOutcome(), res.GetMessage())
			}
			var out bytes.Buffer
			for i, c := range h.logChunks(t, "chunks", "build") {
				d := c.GetData()
				if len(d) > 0 && d[len(d)-1] != '\n' && (len(d) != logFlushBytes || bytes.IndexByte(d, '\n') >= 0) {
					t.Errorf("chunk %d (%s, %d bytes) ends inside a line that fits a chunk: ...%q", i, c.GetStream(), len(d), d[max(0, len(d)-40):])
				}
				if c.GetStream() == StreamStdout {
					out.Write(d)
				}
			}
			want, err := osexec.Command("sh", "-c", tc.step).Output()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(out.Bytes(), want) {
				t.Errorf("the stdout chunks hold %d bytes, the step wrote %d", out.Len(), len(want))
			}
		})
	}
}

// A result is heard of only after its logs are stored, pass or fail: whoever reads a
// stage's log on hearing of its end (`sluice run` on a failure, `sluice logs` after a run)
// finds all of it, and a result whose chunks were lost says so.
func TestAResultWaitsForItsLogs(t *testing.T) {
	h := newHarness(t)
	if err := h.env.JS.DeleteStream(t.Context(), h.names.LogsStream()); err != nil {
		t.Fatal(err)
	}
	h.publish(t, newTask("fails", "echo why it failed; exit 3"))
	h.publish(t, newTask("passes", "echo all good"))
	h.start(t, Config{})
	for run, want := range map[string]sluicev1.Outcome{"fails": sluicev1.Outcome_OUTCOME_FAILED, "passes": sluicev1.Outcome_OUTCOME_PASSED} {
		res := h.final(t, run)
		if res.GetOutcome() != want {
			t.Fatalf("%s: %s %q, want %s whatever became of its logs", run, res.GetOutcome(), res.GetMessage(), want)
		}
		if got := res.GetDetail()["logs"]; !strings.Contains(got, "log chunks not stored") {
			t.Errorf("%s: the result was sent before its logs were settled: detail logs = %q", run, got)
		}
	}
	h.waitQueueEmpty(t)
}
