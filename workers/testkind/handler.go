// Package testkind is the test stage kind: a thin adapter from a task to the testreport
// engine (package github.com/sluice-ci/sluice/testreport) and back to a Result. It runs a
// stage's `run:` test commands, sharded by recorded timings. With SLUICE_TEST_UNITS in the
// stage's env (a command that prints one unit per line, e.g. `go list ./...`), the units are
// split across the stage's shards longest-processing-time first over their durations in KV
// sluice_timings, and each shard's steps get theirs in SLUICE_SHARD_UNITS. `go test -json`
// output on stdout and JUnit files named by SLUICE_JUNIT are read into a JUnit artifact, one
// finding per failed test, and new timings for the next run's split. The steps' exit codes
// decide the outcome.
package testkind

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluice-ci/sluice/internal/junit"
	sluicev1 "github.com/sluice-ci/sluice/proto/sluice/v1"
	"github.com/sluice-ci/sluice/testreport"
	"github.com/sluice-ci/sluice/workers"
	"github.com/sluice-ci/sluice/workers/exec"
)

// Kind is the stage kind this package runs.
const Kind = sluicev1.StageKind_STAGE_KIND_TEST

// Environment variables of the protocol between a stage and this handler.
const (
	// UnitsEnv (stage env) is the command listing the stage's units, one per output line.
	UnitsEnv = "SLUICE_TEST_UNITS"
	// ShardUnitsEnv (set for the steps) is this shard's units, space-separated.
	ShardUnitsEnv = "SLUICE_SHARD_UNITS"
	// JUnitEnv (stage env) is a space-separated list of globs, relative to the source tree,
	// of JUnit files the steps write.
	JUnitEnv = "SLUICE_JUNIT"
)

// RuleTestFailed is the rule id of a failed test's finding.
const RuleTestFailed = "test-failed"

// MaxResultFindings bounds the findings a result carries so that it fits a NATS message;
// the JUnit artifact has every failure.
const MaxResultFindings = 200

// reportTimeout bounds storing the timings and the JUnit artifact after the steps.
const reportTimeout = 30 * time.Second

// maxUnitsOutput bounds what the units command may print.
const maxUnitsOutput = 4 << 20

// Register installs the test kind's Handler, recording and reading unit durations in
// timings (nil: units are split evenly by name and nothing is recorded).
func Register(r *workers.Registry, timings jetstream.KeyValue) {
	r.Register(Kind, Handler{Timings: timings})
}

// Handler runs test stages.
type Handler struct {
	// Timings is the KV bucket bus.Names.TimingsBucket(): recorded unit durations, and the
	// split every shard of an attempt agrees on. Nil: units are split evenly by name (every
	// shard computes the same split from the same unit list) and nothing is recorded.
	Timings jetstream.KeyValue
}

// JUnitArtifact is the name of the JUnit report of the shard at index i (0-based, as
// Task.ShardIndex): junit-shard-1.xml for the first, as shards are numbered to users.
func JUnitArtifact(i int32) string { return fmt.Sprintf("junit-shard-%d.xml", i+1) }

// ShardName is how users read a task's shard: "2/4", 1-based, with the count.
func ShardName(t *sluicev1.Task) string {
	return fmt.Sprintf("%d/%d", t.GetShardIndex()+1, shardCount(t))
}

// Handle lists and splits the units when the stage asks for it, runs the steps with this
// shard's units, and reports the tests they ran.
func (h Handler) Handle(ctx context.Context, t *workers.Task) *sluicev1.Result {
	task := t.Task
	env := slices.Clone(t.Env)
	var units []string
	if cmd := lookupEnv(env, UnitsEnv); cmd != "" {
		all, res := listUnits(ctx, t, cmd)
		if res != nil {
			return res
		}
		shards, err := AgreeSplit(ctx, h.Timings, task, all)
		if err != nil {
			return &sluicev1.Result{Outcome: sluicev1.Outcome_OUTCOME_ERROR, Message: "split test units: " + err.Error()}
		}
		i := int(task.GetShardIndex())
		if i < 0 || i >= len(shards) {
			return &sluicev1.Result{Outcome: sluicev1.Outcome_OUTCOME_ERROR,
				Message: fmt.Sprintf("shard index %d out of range for %d shards", i, len(shards))}
		}
		units = shards[i]
		fmt.Fprintf(t.Log, "shard %s: %d of %d units: %s\n", ShardName(task), len(units), len(all), strings.Join(units, " "))
		if len(units) == 0 {
			return &sluicev1.Result{Outcome: sluicev1.Outcome_OUTCOME_PASSED,
				Message: fmt.Sprintf("no test units for shard %s (%d units over %d shards)", ShardName(task), len(all), shardCount(task))}
		}
		env = append(env, ShardUnitsEnv+"="+strings.Join(units, " "))
	}

	// The parser reads the same redacted text the logs get: test output goes into the
	// result and the JUnit artifact.
	parser := testreport.NewParser()
	redacted := exec.NewRedactor(parser, secretValues(task, env))
	runner := *t.Exec
	runner.Env = env
	runner.Stdout = io.MultiWriter(t.Stdout, redacted)
	shard := *t
	shard.Env, shard.Exec = env, &runner
	res := shard.RunSteps(ctx, task.GetSpec().GetRun())
	if err := redacted.Close(); err != nil {
		fmt.Fprintf(t.Log, "read the test output: %v\n", err)
	}

	pkgs := parser.Packages()
	if errors.Is(ctx.Err(), context.Canceled) {
		testreport.CutOff(pkgs)
	}
	fileSuites, fileCases, err := testreport.ReadJUnit(t.Dir, strings.Fields(lookupEnv(env, JUnitEnv)))
	if err != nil {
		err = fmt.Errorf("%s: %w", JUnitEnv, err)
		fmt.Fprintf(t.Log, "JUnit reports: %v\n", err)
		reportError(res, fmt.Errorf("JUnit reports: %w", err))
	}
	// The results are stored even when the task's deadline has passed: a timed-out shard's
	// report says which test it was stuck in.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), reportTimeout)
	defer cancel()
	h.record(rctx, t, pkgs, fileCases)
	if len(units) > 0 {
		res.Metrics = append(res.Metrics, &sluicev1.Metric{Name: "test_shard_units", Value: float64(len(units)),
			Labels: map[string]string{"shard": ShardName(task)}})
	}
	suites := append(testreport.JUnitSuites(pkgs), fileSuites...)
	if len(suites) == 0 {
		return res
	}
	report(rctx, t, res, len(pkgs), suites)
	return res
}

// report adds the tests' JUnit artifact, findings, metrics and summary to res.
func report(ctx context.Context, t *workers.Task, res *sluicev1.Result, packages int, suites []junit.Suite) {
	shard := t.Task.GetShardIndex()
	doc := &junit.Suites{Name: fmt.Sprintf("%s shard %s", t.Task.GetStage(), ShardName(t.Task)), Suites: suites}
	var buf bytes.Buffer
	if err := junit.Write(&buf, doc); err != nil {
		reportError(res, err)
		return
	}
	ref, err := t.UploadArtifact(ctx, JUnitArtifact(shard), "application/xml", &buf)
	if err != nil {
		reportError(res, err)
	} else {
		res.Artifacts = append(res.Artifacts, ref)
	}

	failures := testreport.Failures(suites)
	for _, f := range failures[:min(len(failures), MaxResultFindings)] {
		res.Findings = append(res.Findings, &sluicev1.Finding{
			Rule: RuleTestFailed, File: f.Suite, Message: f.Name + " failed",
			Severity: sluicev1.Severity_SEVERITY_HIGH, Excerpt: testMessage(f),
			Fingerprint: f.Suite + "." + f.Name,
			Properties: map[string]string{"test": f.Name, "shard": ShardName(t.Task),
				"attempt": strconv.Itoa(int(t.Task.GetAttempt()))},
		})
	}
	labels := func() map[string]string { return map[string]string{"shard": ShardName(t.Task)} }
	res.Metrics = append(res.Metrics,
		&sluicev1.Metric{Name: "tests", Value: float64(doc.Tests), Labels: labels()},
		&sluicev1.Metric{Name: "tests_failed", Value: float64(doc.Failures + doc.Errors), Labels: labels()},
		&sluicev1.Metric{Name: "tests_skipped", Value: float64(doc.Skipped), Labels: labels()},
		&sluicev1.Metric{Name: "test_seconds", Value: doc.Time, Unit: "s", Labels: labels()},
	)

	sum := testreport.Summary(suites, packages)
	res.Message = res.GetMessage() + "; " + sum
	fmt.Fprintf(t.Log, "tests: %s\n", sum)
}

// reportError notes a report that could not be stored; it turns a pass into an ERROR (the
// tests' report is part of the gate) and leaves any other outcome as the steps had it.
func reportError(res *sluicev1.Result, err error) {
	res.Message = res.GetMessage() + "; " + err.Error()
	if res.GetOutcome() == sluicev1.Outcome_OUTCOME_PASSED {
		res.Outcome = sluicev1.Outcome_OUTCOME_ERROR
	}
}

// listUnits runs the units command in the source tree: one unit per non-empty line. A
// failure is the task's result.
func listUnits(ctx context.Context, t *workers.Task, cmd string) ([]string, *sluicev1.Result) {
	fmt.Fprintf(t.Log, "listing test units: %s\n", cmd)
	out := &limitedBuffer{limit: maxUnitsOutput}
	runner := *t.Exec
	runner.Stdout, runner.Log = out, nil
	if _, err := runner.Run(ctx, 0, cmd); err != nil {
		res := &sluicev1.Result{Outcome: sluicev1.Outcome_OUTCOME_ERROR, Message: fmt.Sprintf("%s `%s`: %v", UnitsEnv, cmd, err)}
		switch {
		case errors.Is(err, exec.ErrTimeout):
			res.Outcome = sluicev1.Outcome_OUTCOME_TIMED_OUT
		case errors.Is(err, exec.ErrCanceled):
			res.Outcome = sluicev1.Outcome_OUTCOME_CANCELLED
		}
		return nil, res
	}
	if out.over {
		return nil, &sluicev1.Result{Outcome: sluicev1.Outcome_OUTCOME_ERROR,
			Message: fmt.Sprintf("%s `%s` printed more than %d bytes", UnitsEnv, cmd, maxUnitsOutput)}
	}
	var units []string
	for l := range strings.Lines(out.String()) {
		if u := strings.TrimSpace(l); u != "" {
			units = append(units, u)
		}
	}
	return units, nil
}

// storedSplit is the value of a SplitKey.
type storedSplit struct {
	Shards [][]string `json:"shards"`
}

// AgreeSplit returns the split of units across the task's shards, longest processing time
// first over their durations in timings (KV sluice_timings, as RecordTimings stores
// them), that every shard of the task's attempt uses: the one the first shard to get here
// stored under SplitKey (kv.Create lets exactly one store it), so no unit runs twice or
// never even when timings change between the shards' starts, and a redelivered shard runs
// what it ran the first time. Without timings (nil) units are split evenly by name.
func AgreeSplit(ctx context.Context, timings jetstream.KeyValue, task *sluicev1.Task, all []string) ([][]string, error) {
	n := shardCount(task)
	if timings == nil {
		return testreport.Split(testreport.Units(all, nil), n), nil
	}
	key := SplitKey(task.GetRunId(), task.GetStage(), task.GetAttempt())
	if e, err := timings.Get(ctx, key); err == nil {
		return decodeSplit(e.Value(), n)
	} else if !errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, fmt.Errorf("read %s: %w", key, err)
	}
	known := make(map[string]time.Duration, len(all))
	for _, u := range all {
		e, err := timings.Get(ctx, TimingKey(task.GetPipeline(), task.GetStage(), u))
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read the timing of %s: %w", u, err)
		}
		ms, err := strconv.ParseInt(strings.TrimSpace(string(e.Value())), 10, 64)
		if err != nil || ms < 0 {
			// A value this handler did not write: the unit is estimated like a new one.
			continue
		}
		known[u] = time.Duration(ms) * time.Millisecond
	}
	shards := testreport.Split(testreport.Units(all, known), n)
	data, err := json.Marshal(storedSplit{Shards: shards})
	if err != nil {
		return nil, fmt.Errorf("encode the split: %w", err)
	}
	if _, err := timings.Create(ctx, key, data); err == nil {
		return shards, nil
	} else if !errors.Is(err, jetstream.ErrKeyExists) {
		return nil, fmt.Errorf("store %s: %w", key, err)
	}
	e, err := timings.Get(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", key, err)
	}
	return decodeSplit(e.Value(), n)
}

func decodeSplit(data []byte, n int) ([][]string, error) {
	var s storedSplit
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("decode the stored split: %w", err)
	}
	if len(s.Shards) != n {
		return nil, fmt.Errorf("%w: %d shards stored, the task has %d", ErrBadSplit, len(s.Shards), n)
	}
	return s.Shards, nil
}

// record stores the durations the run measured: each Go package's test time and each
// JUnit case's.
func (h Handler) record(ctx context.Context, t *workers.Task, pkgs []*testreport.Package, cases []junit.ReadCase) {
	durations := testreport.Timings(pkgs)
	for _, c := range cases {
		if c.Status != junit.Skipped {
			durations[c.Name] = c.Duration
		}
	}
	RecordTimings(ctx, h.Timings, t, durations)
}

// RecordTimings stores the units' measured durations in timings (nil: nowhere) for the
// next split of the task's stage. A failure to store is logged to the task's log; it costs
// the next split its balance, not the stage its outcome.
func RecordTimings(ctx context.Context, timings jetstream.KeyValue, t *workers.Task, durations map[string]time.Duration) {
	if timings == nil {
		return
	}
	for _, unit := range slices.Sorted(maps.Keys(durations)) {
		key := TimingKey(t.Task.GetPipeline(), t.Task.GetStage(), unit)
		if _, err := timings.Put(ctx, key, []byte(strconv.FormatInt(durations[unit].Milliseconds(), 10))); err != nil {
			fmt.Fprintf(t.Log, "record the timing of %s: %v\n", unit, err)
		}
	}
}

// lookupEnv returns the last value of name in env, as a process would see it.
func lookupEnv(env []string, name string) string {
	for i := len(env) - 1; i >= 0; i-- {
		if v, ok := strings.CutPrefix(env[i], name+"="); ok {
			return v
		}
	}
	return ""
}

// secretValues are the values of the stage's secrets in env, for redaction.
func secretValues(t *sluicev1.Task, env []string) []string {
	var out []string
	for _, name := range t.GetSpec().GetSecrets() {
		if v := lookupEnv(env, name); v != "" {
			out = append(out, v)
		}
	}
	return out
}

func shardCount(t *sluicev1.Task) int { return max(int(t.GetShardCount()), 1) }

// limitedBuffer keeps at most limit bytes and notes that more came.
type limitedBuffer struct {
	bytes.Buffer
	limit int
	over  bool
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	n := len(p)
	if room := b.limit - b.Len(); len(p) > room {
		b.over = true
		p = p[:max(room, 0)]
	}
	b.Buffer.Write(p)
	// The dropped bytes count as written: a short write would fail the command.
	return n, nil
}

// Bounds of a finding's excerpt: the start of a failed test's own message.
const (
	excerptLines = 20
	excerptBytes = 2048
)

// testMessage is what a failed test said, as a finding's excerpt: its output without go
// test's framing lines (=== RUN, --- FAIL: ...) and their common indent, from the start,
// where an assertion or a panic says what went wrong.
func testMessage(f testreport.Failure) string {
	p := f.Failure
	if p == nil {
		p = f.Error
	}
	if p == nil {
		return ""
	}
	var lines []string
	for l := range strings.Lines(p.Text) {
		l = strings.TrimRight(l, "\r\n")
		if strings.TrimSpace(l) == "" && len(lines) == 0 || framing(l) {
			continue
		}
		lines = append(lines, l)
		if len(lines) == excerptLines {
			break
		}
	}
	indent := -1
	for _, l := range lines {
		if strings.TrimSpace(l) == "" {
			continue
		}
		n := len(l) - len(strings.TrimLeft(l, " \t"))
		if indent < 0 || n < indent {
			indent = n
		}
	}
	for i, l := range lines {
		lines[i] = l[min(max(indent, 0), len(l)):]
	}
	msg := strings.TrimRight(strings.Join(lines, "\n"), "\n ")
	if len(msg) > excerptBytes {
		msg = strings.ToValidUTF8(msg[:excerptBytes], "")
	}
	return msg
}

// framing reports whether l is a line go test prints around a test's own output.
func framing(l string) bool {
	t := strings.TrimLeft(l, " ")
	for _, p := range []string{"=== RUN ", "=== PAUSE ", "=== CONT ", "=== NAME ", "--- FAIL: ", "--- PASS: ", "--- SKIP: "} {
		if strings.HasPrefix(t, p) {
			return true
		}
	}
	return false
}
