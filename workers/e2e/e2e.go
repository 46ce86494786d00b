// Package e2e is the e2e stage kind: a thin adapter from a task to the journey engine
// (package github.com/sluice-ci/sluice/e2e) and back to a Result.
//
// A stage either lists journey files,
//
//	e2e: {kind: e2e, shards: 3, e2e: {base_url: "${STAGING_URL}", journeys: ["e2e/*.yaml"]}}
//
// and each shard runs its share of them on the worker's one browser, split longest first
// by the durations earlier runs recorded in KV sluice_timings (as the test kind splits its
// units: testkind.AgreeSplit), or runs an external suite,
//
//	e2e: {kind: e2e, run: ["npx playwright test --reporter=junit"], env: {PLAYWRIGHT_JUNIT_OUTPUT_NAME: results.xml}}
//
// whose JUnit reports, found in the source tree after the run, become the stage's findings.
package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	engine "github.com/sluice-ci/sluice/e2e"
	"github.com/sluice-ci/sluice/internal/junit"
	sluicev1 "github.com/sluice-ci/sluice/proto/sluice/v1"
	"github.com/sluice-ci/sluice/workers"
	"github.com/sluice-ci/sluice/workers/testkind"
)

// Kind is the stage kind this package handles.
const Kind = sluicev1.StageKind_STAGE_KIND_E2E

// JUnitEnv names a task environment variable that, when set, is the glob (relative to the
// source tree) of the JUnit reports of a `run:` suite. Without it every XML file the run
// wrote whose root is <testsuites> or <testsuite> is read.
const JUnitEnv = "SLUICE_JUNIT"

// Handler runs e2e tasks. Its browser starts with the first journey and is shared by every
// task of the worker process.
type Handler struct {
	// Timings is the KV bucket bus.Names.TimingsBucket(): each journey file's recorded
	// duration, by which shards split the files, and the split every shard of an attempt
	// agrees on. Nil: files are split evenly by name and nothing is recorded.
	Timings jetstream.KeyValue

	c engine.Config

	mu  sync.Mutex
	eng *engine.Engine
}

// Register installs a Handler for the e2e kind whose journeys run on the process's one
// browser, started when the first e2e task arrives, and whose shards split the journey
// files by the durations in timings (nil: evenly by name).
func Register(r *workers.Registry, timings jetstream.KeyValue) {
	h := New(engine.Config{})
	h.Timings = timings
	r.Register(Kind, h)
}

// New returns a Handler whose engine uses c. Nothing starts until a task needs a browser.
func New(c engine.Config) *Handler { return &Handler{c: c} }

// Close stops the browser, if one runs.
func (h *Handler) Close() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.eng == nil {
		return nil
	}
	return h.eng.Close()
}

func (h *Handler) engine() (*engine.Engine, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.eng != nil {
		return h.eng, nil
	}
	eng, err := engine.New(h.c)
	if err != nil {
		return nil, err
	}
	h.eng = eng
	return eng, nil
}

// Handle runs the journeys of t's shard, or its `run:` suite.
func (h *Handler) Handle(ctx context.Context, t *workers.Task) *sluicev1.Result {
	spec := t.Task.GetSpec()
	globs := spec.GetE2E().GetJourneys()
	switch {
	case len(globs) > 0 && len(spec.GetRun()) > 0:
		return errorf("an e2e stage runs either journeys: or run:, not both")
	case len(globs) > 0:
		return h.journeys(ctx, t, globs)
	case len(spec.GetRun()) > 0:
		return runSuite(ctx, t)
	}
	return errorf("an e2e stage needs e2e.journeys (journey files) or run: (an external suite)")
}

func errorf(format string, args ...any) *sluicev1.Result {
	return &sluicev1.Result{Outcome: sluicev1.Outcome_OUTCOME_ERROR, Message: fmt.Sprintf(format, args...)}
}

// Expand resolves journey globs (filepath.Match patterns) relative to dir, returning
// slash-separated paths relative to dir, sorted and without duplicates. A glob that matches
// nothing or climbs out of dir is an error.
func Expand(dir string, globs []string) ([]string, error) {
	seen := map[string]bool{}
	var files []string
	for _, g := range globs {
		clean := path.Clean(filepath.ToSlash(g))
		if path.IsAbs(clean) || clean == ".." || strings.HasPrefix(clean, "../") {
			return nil, fmt.Errorf("journeys glob %q: must stay inside the source tree", g)
		}
		matches, err := filepath.Glob(filepath.Join(dir, filepath.FromSlash(clean)))
		if err != nil {
			return nil, fmt.Errorf("journeys glob %q: %w", g, err)
		}
		if len(matches) == 0 {
			return nil, fmt.Errorf("journeys glob %q matched no file in the source tree", g)
		}
		for _, m := range matches {
			rel, err := filepath.Rel(dir, m)
			if err != nil {
				return nil, fmt.Errorf("journeys glob %q: %w", g, err)
			}
			rel = filepath.ToSlash(rel)
			if !seen[rel] {
				seen[rel] = true
				files = append(files, rel)
			}
		}
	}
	sort.Strings(files)
	return files, nil
}

func (h *Handler) journeys(ctx context.Context, t *workers.Task, globs []string) *sluicev1.Result {
	spec := t.Task.GetSpec().GetE2E()
	files, err := Expand(t.Dir, globs)
	if err != nil {
		return errorf("%v", err)
	}
	idx, count := int(t.Task.GetShardIndex()), int(t.Task.GetShardCount())
	mine, shard := files, ""
	if count > 1 {
		split, err := testkind.AgreeSplit(ctx, h.Timings, t.Task, files)
		if err != nil {
			return errorf("split the journey files across %d shards: %v", count, err)
		}
		if idx < 0 || idx >= len(split) {
			return errorf("shard index %d out of range for %d shards", idx, len(split))
		}
		mine = split[idx]
		shard = " (shard " + testkind.ShardName(t.Task) + ")"
	}
	fmt.Fprintf(t.Log, "%d journey file(s), %d for this shard%s\n", len(files), len(mine), shard)
	if len(mine) == 0 {
		return &sluicev1.Result{Outcome: sluicev1.Outcome_OUTCOME_PASSED, Message: "no journeys for this shard" + shard}
	}

	vars := map[string]string{}
	if spec.GetBaseUrl() != "" {
		vars["BASE_URL"] = spec.GetBaseUrl()
	}
	lookup := engine.MapLookup(vars, engine.EnvLookup(t.Env))
	var journeys []*engine.Journey
	var perrs engine.Errors
	for _, f := range mine {
		data, err := os.ReadFile(filepath.Join(t.Dir, filepath.FromSlash(f)))
		if err != nil {
			perrs = append(perrs, &engine.Error{File: f, Msg: err.Error()})
			continue
		}
		j, err := engine.Parse(f, data, lookup)
		if err != nil {
			perrs = append(perrs, engine.Problems(err)...)
			continue
		}
		journeys = append(journeys, j)
	}
	if len(perrs) > 0 {
		res := errorf("%d problem(s) in journey files: %v", len(perrs), perrs[0])
		for _, e := range perrs {
			res.Findings = append(res.Findings, &sluicev1.Finding{
				Rule: "e2e/journey-syntax", File: e.File, Line: int32(e.Line), Message: e.Text(),
				Severity: sluicev1.Severity_SEVERITY_HIGH,
			})
		}
		return res
	}

	eng, err := h.engine()
	if err != nil {
		return errorf("%v", err)
	}
	res := &sluicev1.Result{Detail: map[string]string{}}
	var results []*engine.Result
	var names []string
	for _, j := range journeys {
		if ctx.Err() != nil {
			break
		}
		r := eng.Run(ctx, j, engine.RunOptions{BaseURL: spec.GetBaseUrl()})
		results = append(results, r)
		names = append(names, j.File)
		fmt.Fprintf(t.Log, "journey %q (%s): %s in %s\n", r.Journey, r.File, r.Status, r.Duration.Round(time.Millisecond))
		if r.Message != "" {
			fmt.Fprintf(t.Log, "  %s\n", r.Message)
		}
		for _, c := range r.ConsoleErrors() {
			fmt.Fprintf(t.Stderr, "%s: console error: %s\n", r.File, c)
		}
		res.Metrics = append(res.Metrics, &sluicev1.Metric{
			Name: "journey_duration_seconds", Value: r.Duration.Seconds(), Unit: "s",
			Labels: map[string]string{"journey": r.Journey, "file": r.File, "status": string(r.Status)},
		})
		for _, s := range r.Screenshots {
			name := "screenshots/" + strings.TrimSuffix(r.File, path.Ext(r.File)) + "/" + s.Name
			ref, err := t.UploadArtifact(ctx, name, "image/png", bytes.NewReader(s.PNG))
			if err != nil {
				fmt.Fprintf(t.Log, "  store screenshot %s: %v\n", name, err)
				continue
			}
			res.Artifacts = append(res.Artifacts, ref)
		}
		if r.Status != engine.StatusPassed {
			res.Findings = append(res.Findings, &sluicev1.Finding{
				Rule: "e2e/" + string(r.Status), File: r.File, Line: int32(r.Line), Message: r.Message,
				Severity:   sluicev1.Severity_SEVERITY_HIGH,
				Properties: map[string]string{"journey": r.Journey, "step": fmt.Sprint(r.Failed)},
			})
		}
	}
	res.Detail["journeys"] = strings.Join(names, ",")
	h.record(ctx, t, results)
	junit := "junit.xml"
	if count > 1 {
		junit = testkind.JUnitArtifact(t.Task.GetShardIndex())
	}
	var buf bytes.Buffer
	if err := engine.WriteJUnit(&buf, t.Task.GetStage(), results); err == nil {
		if ref, err := t.UploadArtifact(ctx, junit, "application/xml", &buf); err == nil {
			res.Artifacts = append(res.Artifacts, ref)
		} else {
			fmt.Fprintf(t.Log, "store %s: %v\n", junit, err)
		}
	}
	res.Metrics = append(res.Metrics, testCounts(results, len(journeys), t.Task)...)
	if st := eng.Stats(); st.Starts > 0 {
		res.Metrics = append(res.Metrics, &sluicev1.Metric{Name: "browser_starts", Value: float64(st.Starts)},
			&sluicev1.Metric{Name: "browser_start_seconds", Value: st.LastStart.Seconds(), Unit: "s"})
	}
	outcome(ctx, res, results, len(journeys), shard)
	return res
}

// outcome sets the result's outcome and message from the journeys' results.
func outcome(ctx context.Context, res *sluicev1.Result, results []*engine.Result, planned int, shard string) {
	var failed []string
	for _, r := range results {
		if r.Status != engine.StatusPassed {
			failed = append(failed, fmt.Sprintf("%s (%s)", r.Journey, r.Message))
		}
	}
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		res.Outcome = sluicev1.Outcome_OUTCOME_TIMED_OUT
		res.Message = fmt.Sprintf("timed out after %d of %d journeys%s", len(results), planned, shard)
	case ctx.Err() != nil:
		res.Outcome = sluicev1.Outcome_OUTCOME_CANCELLED
		res.Message = fmt.Sprintf("cancelled after %d of %d journeys%s", len(results), planned, shard)
	case len(failed) > 0:
		res.Outcome = sluicev1.Outcome_OUTCOME_FAILED
		res.Message = fmt.Sprintf("%d of %d journeys failed%s: %s", len(failed), planned, shard, strings.Join(failed, "; "))
	default:
		res.Outcome = sluicev1.Outcome_OUTCOME_PASSED
		res.Message = fmt.Sprintf("%d journeys passed%s", planned, shard)
	}
}

// runSuite runs the stage's commands, then reads the JUnit reports they wrote.
func runSuite(ctx context.Context, t *workers.Task) *sluicev1.Result {
	start := time.Now()
	res := t.RunSteps(ctx, t.Task.GetSpec().GetRun())
	reports, err := findJUnit(t.Dir, engine.EnvLookup(t.Env), start)
	if err != nil {
		fmt.Fprintf(t.Log, "JUnit reports: %v\n", err)
	}
	if len(reports) == 0 {
		res.Message += " (no JUnit report found)"
		return res
	}
	var tests, failures int
	for _, rel := range reports {
		data, err := os.ReadFile(filepath.Join(t.Dir, filepath.FromSlash(rel)))
		if err != nil {
			fmt.Fprintf(t.Log, "read %s: %v\n", rel, err)
			continue
		}
		rep, err := junit.Read(bytes.NewReader(data))
		if err != nil {
			fmt.Fprintf(t.Log, "%s: %v\n", rel, err)
			continue
		}
		if ref, err := t.UploadArtifact(ctx, "junit/"+rel, "application/xml", bytes.NewReader(data)); err == nil {
			res.Artifacts = append(res.Artifacts, ref)
		}
		tests += rep.Tests
		for _, c := range rep.Cases {
			if c.Status != junit.Failed && c.Status != junit.Errored {
				continue
			}
			failures++
			file := c.File
			if file == "" {
				file = rel
			}
			res.Findings = append(res.Findings, &sluicev1.Finding{
				Rule: "e2e/" + string(c.Status), File: file, Line: int32(c.Line),
				Message: strings.TrimSpace(c.ClassName + " " + c.Name + ": " + c.Message), Severity: sluicev1.Severity_SEVERITY_HIGH,
			})
		}
	}
	res.Metrics = append(res.Metrics,
		&sluicev1.Metric{Name: "tests", Value: float64(tests)},
		&sluicev1.Metric{Name: "tests_failed", Value: float64(failures)})
	summary := fmt.Sprintf("%d tests, %d failed (JUnit: %s)", tests, failures, strings.Join(reports, ", "))
	if failures > 0 && res.Outcome == sluicev1.Outcome_OUTCOME_PASSED {
		// A suite that reports failures but exits 0 still fails the gate.
		res.Outcome = sluicev1.Outcome_OUTCOME_FAILED
	}
	res.Message += "; " + summary
	return res
}

// findJUnit lists the JUnit reports of a run: those matching $SLUICE_JUNIT if set, else
// every .xml file written since start whose root is a JUnit element.
func findJUnit(dir string, lookup engine.Lookup, start time.Time) ([]string, error) {
	if g, ok := lookup(JUnitEnv); ok && g != "" {
		files, err := Expand(dir, []string{g})
		if err != nil {
			return nil, fmt.Errorf("%s: %w", JUnitEnv, err)
		}
		return files, nil
	}
	// File systems store coarse modification times; a report written in the run's first
	// second must count.
	since := start.Add(-time.Second)
	var found []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == "node_modules" {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.EqualFold(filepath.Ext(p), ".xml") {
			return nil
		}
		info, err := d.Info()
		if err != nil || info.ModTime().Before(since) {
			return nil
		}
		if !isJUnit(p) {
			return nil
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		found = append(found, filepath.ToSlash(rel))
		return nil
	})
	return found, err
}

// isJUnit tells a JUnit report by its root element.
func isJUnit(p string) bool {
	f, err := os.Open(p)
	if err != nil {
		return false
	}
	defer f.Close()
	head := make([]byte, 512)
	n, _ := f.Read(head)
	s := string(head[:n])
	return strings.Contains(s, "<testsuites") || strings.Contains(s, "<testsuite")
}

// record stores how long each journey file took, for the next split; a journey a cancel
// or a crash cut short measured nothing. It runs even when the task's deadline has passed.
func (h *Handler) record(ctx context.Context, t *workers.Task, results []*engine.Result) {
	durations := map[string]time.Duration{}
	for _, r := range results {
		if r.Status == engine.StatusPassed || r.Status == engine.StatusFailed {
			durations[r.File] += r.Duration
		}
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
	defer cancel()
	testkind.RecordTimings(rctx, h.Timings, t, durations)
}

// recordTimeout bounds storing the journeys' durations.
const recordTimeout = 10 * time.Second

// testCounts are the shard's journeys as test counts (the names the test kind uses), which
// a sharded stage totals: every planned journey, those that did not pass, and those a
// cancel or a deadline left unrun or skipped.
func testCounts(results []*engine.Result, planned int, task *sluicev1.Task) []*sluicev1.Metric {
	failed, skipped := 0, planned-len(results)
	for _, r := range results {
		switch r.Status {
		case engine.StatusPassed:
		case engine.StatusSkipped:
			skipped++
		default:
			failed++
		}
	}
	labels := func() map[string]string {
		return map[string]string{"shard": testkind.ShardName(task)}
	}
	return []*sluicev1.Metric{
		{Name: "tests", Value: float64(planned), Labels: labels()},
		{Name: "tests_failed", Value: float64(failed), Labels: labels()},
		{Name: "tests_skipped", Value: float64(skipped), Labels: labels()},
	}
}
