package loadtest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/sluice-ci/sluice/internal/procgroup"
)

// k6 exit codes the engine tells apart (k6's errext/exitcodes).
const (
	exitThresholds      = 99
	exitInvalidConfig   = 104
	exitScriptException = 107
)

// dialTimeout bounds the reachability check of the target.
const dialTimeout = 5 * time.Second

// killGrace is how long k6's output pipes may stay open after it was killed.
const killGrace = 5 * time.Second

// trendStats are the statistics every run's summary holds, whatever the script asks for, so
// p50/p95/p99 are always there.
var trendStats = []string{"avg", "min", "med", "max", "p(90)", "p(95)", "p(99)"}

// Stage is one ramp step of a run (k6 --stage DURATION:TARGET).
type Stage struct {
	Duration time.Duration
	Target   int
}

// Options describe one k6 run.
type Options struct {
	// K6 is the k6 binary; empty: FindK6.
	K6 string
	// Script is the k6 script; relative to Dir.
	Script string
	// Dir is the working directory of k6 (files a handleSummary of the script writes land
	// there); empty: the script's directory.
	Dir string
	// Target reaches the script as __ENV.TARGET_URL. When set, it must accept connections
	// before k6 starts.
	Target string
	// VUs and Duration, or Stages, override the script's own load profile when set.
	VUs      int
	Duration time.Duration
	Stages   []Stage
	// Env are extra script variables (k6 -e), visible as __ENV.NAME.
	Env map[string]string
	// Thresholds are added to the script's own: metric -> expressions.
	Thresholds map[string][]string
	// ProcEnv is k6's process environment; nil: the current process's.
	ProcEnv []string
	// Output receives k6's output (progress lines, logs) while it runs; nil discards it.
	Output io.Writer
	// TmpDir holds the run's scratch files (the wrapper script, the summary); empty: a new
	// directory under the system's. With Prepare, k6 must be able to write it.
	TmpDir string
	// Prepare adjusts the k6 command before it starts: a script is untrusted code, and its
	// open() reads files, so a caller runs k6 as a user of the script's own. The command is
	// started and waited for on one locked OS thread, as a parent-death signal needs.
	Prepare func(*exec.Cmd)
}

// Result is a finished k6 run.
type Result struct {
	Summary *Summary // nil when k6 produced no summary (it did not start the test)
	// SummaryJSON is the handleSummary data as k6 wrote it.
	SummaryJSON []byte
	ExitCode    int
	Elapsed     time.Duration // wall time of the k6 process
	K6          string        // the binary that ran
}

// Run runs k6 on o.Script and reads its summary. It returns a Result whenever k6 ran, with
// an error wrapping ErrThresholds when thresholds were crossed (the error names them),
// ErrScript, ErrK6Failed or ErrCanceled; and a nil Result with ErrK6NotFound,
// ErrTargetUnreachable, ErrScript (no such file) or ErrBadOptions when k6 could not start.
func Run(ctx context.Context, o Options) (*Result, error) {
	if err := o.check(); err != nil {
		return nil, err
	}
	k6 := o.K6
	if k6 == "" {
		var err error
		if k6, err = FindK6(); err != nil {
			return nil, err
		}
	} else if err := executable(k6); err != nil {
		return nil, fmt.Errorf("%w: %w; build it with `make bin/k6`", ErrK6NotFound, err)
	}
	script := o.Script
	if !filepath.IsAbs(script) && o.Dir != "" {
		script = filepath.Join(o.Dir, script)
	}
	script, err := filepath.Abs(script)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrScript, o.Script, err)
	}
	if fi, err := os.Stat(script); err != nil || fi.IsDir() {
		return nil, fmt.Errorf("%w: script %s: not a readable file", ErrScript, o.Script)
	}
	if o.Target != "" {
		if err := reachable(ctx, o.Target); err != nil {
			return nil, err
		}
	}
	tmp, err := os.MkdirTemp(o.TmpDir, "sluice-k6-")
	if err != nil {
		return nil, fmt.Errorf("load test scratch directory: %w", err)
	}
	defer os.RemoveAll(tmp)
	summaryPath := filepath.Join(tmp, "summary.json")
	wrapper := filepath.Join(tmp, "sluice-"+filepath.Base(script))
	if err := writeWrapper(wrapper, script, summaryPath, o.Thresholds); err != nil {
		return nil, err
	}

	dir := o.Dir
	if dir == "" {
		dir = filepath.Dir(script)
	}
	out := &tailWriter{w: o.Output}
	cmd := exec.CommandContext(ctx, k6, o.args(wrapper)...)
	cmd.Dir = dir
	cmd.Env = o.ProcEnv
	cmd.Stdout, cmd.Stderr = out, out
	// k6 leads its own process group, killed whole when ctx ends: it has nothing to clean up.
	procgroup.OnCancel(cmd, 0)
	cmd.WaitDelay = killGrace
	if o.Prepare != nil {
		o.Prepare(cmd)
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		// k6 reads the wrapper and writes the summary in the scratch directory, as whoever
		// Prepare made it.
		if cred := cmd.SysProcAttr.Credential; cred != nil {
			for _, p := range []string{tmp, wrapper} {
				if err := os.Chown(p, int(cred.Uid), int(cred.Gid)); err != nil {
					return nil, fmt.Errorf("load test scratch directory: %w", err)
				}
			}
		}
	}
	start := time.Now()
	runErr := cmd.Run()
	res := &Result{ExitCode: cmd.ProcessState.ExitCode(), Elapsed: time.Since(start), K6: k6}
	if ctx.Err() != nil {
		return res, fmt.Errorf("%w after %s: %w", ErrCanceled, res.Elapsed.Round(time.Millisecond), context.Cause(ctx))
	}
	var exitErr *exec.ExitError
	if runErr != nil && !errors.As(runErr, &exitErr) {
		return nil, fmt.Errorf("%w: start %s: %w", ErrK6Failed, k6, runErr)
	}
	if data, err := os.ReadFile(summaryPath); err == nil {
		res.SummaryJSON = data
		if res.Summary, err = ParseSummary(data); err != nil {
			return res, fmt.Errorf("%w: %w", ErrK6Failed, err)
		}
	}
	switch code := res.ExitCode; {
	case code == 0 && res.Summary == nil:
		return res, fmt.Errorf("%w: k6 exited 0 without writing the summary", ErrK6Failed)
	case code == 0:
		return res, nil
	case code == exitThresholds && res.Summary != nil:
		crossed := res.Summary.Crossed()
		names := make([]string, len(crossed))
		for i, t := range crossed {
			names[i] = t.String()
		}
		return res, fmt.Errorf("%w: %s", ErrThresholds, strings.Join(names, "; "))
	case code == exitScriptException, code == exitInvalidConfig && res.Summary == nil:
		return res, fmt.Errorf("%w: k6 exited %d: %s", ErrScript, code, scriptMessage(out.lastError(), script))
	default:
		return res, fmt.Errorf("%w: k6 exited %d: %s", ErrK6Failed, code, out.lastError())
	}
}

func (o *Options) check() error {
	switch {
	case o.Script == "":
		return fmt.Errorf("%w: no script", ErrBadOptions)
	case o.VUs < 0:
		return fmt.Errorf("%w: vus %d must be >= 1", ErrBadOptions, o.VUs)
	case o.Duration < 0:
		return fmt.Errorf("%w: duration %s must be positive", ErrBadOptions, o.Duration)
	case len(o.Stages) > 0 && o.Duration > 0:
		return fmt.Errorf("%w: give a duration or stages, not both", ErrBadOptions)
	}
	for i, s := range o.Stages {
		if s.Duration <= 0 || s.Target < 0 {
			return fmt.Errorf("%w: stage %d (%s to %d VUs): want a positive duration and a target >= 0", ErrBadOptions, i+1, s.Duration, s.Target)
		}
	}
	for name := range o.Env {
		if name == "" || strings.ContainsAny(name, "= ") {
			return fmt.Errorf("%w: env name %q", ErrBadOptions, name)
		}
	}
	for metric, exprs := range o.Thresholds {
		if metric == "" || len(exprs) == 0 {
			return fmt.Errorf("%w: threshold on %q needs a metric and at least one expression", ErrBadOptions, metric)
		}
	}
	return nil
}

// scriptMessage drops what k6 says about the generated wrapper from an error about the
// user's script, so the message starts at the script's own location.
func scriptMessage(msg, script string) string {
	scriptURL := (&url.URL{Scheme: "file", Path: filepath.ToSlash(script)}).String()
	if i := strings.Index(msg, scriptURL); i >= 0 {
		return msg[i:]
	}
	return msg
}

// args is k6's command line. The REST API is off, so parallel runs do not fight over its
// port, and so is usage reporting, which would call out to the internet.
func (o *Options) args(wrapper string) []string {
	args := []string{"run", "--no-usage-report", "--no-color", "--address", ""}
	if o.VUs > 0 {
		args = append(args, "--vus", fmt.Sprint(o.VUs))
	}
	if o.Duration > 0 {
		args = append(args, "--duration", o.Duration.String())
	}
	for _, s := range o.Stages {
		args = append(args, "--stage", fmt.Sprintf("%s:%d", s.Duration, s.Target))
	}
	if o.Target != "" {
		args = append(args, "-e", "TARGET_URL="+o.Target)
	}
	names := make([]string, 0, len(o.Env))
	for name := range o.Env {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		args = append(args, "-e", name+"="+o.Env[name])
	}
	return append(args, wrapper)
}

// reachable fails when the target's host does not accept a TCP connection: k6 would record
// every request as failed and run to the end, where a refused target is a setup problem.
func reachable(ctx context.Context, target string) error {
	u, err := url.Parse(target)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return fmt.Errorf("%w: target %q is not an http(s) URL", ErrBadOptions, target)
	}
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	d := net.Dialer{Timeout: dialTimeout}
	conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort(u.Hostname(), port))
	if err != nil {
		return fmt.Errorf("%w: %s: %w", ErrTargetUnreachable, target, err)
	}
	return conn.Close()
}

// wrapperJS is the script k6 runs: it re-exports the user's script (options, default,
// setup, teardown, scenario functions), adds the stage's thresholds and the trend statistics
// the engine reads, and exports the summary data as JSON beside whatever the script's own
// handleSummary writes. Local exports shadow the star re-export.
const wrapperJS = `// Generated by sluice: runs %[1]s and exports its summary.
import * as script from %[2]s;
export * from %[2]s;

const extraThresholds = %[3]s;
const trendStats = %[4]s;

function mergeOptions(base) {
  const merged = Object.assign({}, base || {});
  const thresholds = Object.assign({}, merged.thresholds || {});
  for (const [metric, exprs] of Object.entries(extraThresholds)) {
    const have = [].concat(thresholds[metric] || []);
    for (const e of exprs) {
      if (!have.includes(e)) have.push(e);
    }
    thresholds[metric] = have;
  }
  merged.thresholds = thresholds;
  const stats = [].concat(merged.summaryTrendStats || []);
  for (const s of trendStats) {
    if (!stats.includes(s)) stats.push(s);
  }
  merged.summaryTrendStats = stats;
  return merged;
}

export const options = mergeOptions(script.options);

export default function (data) {
  return script.default(data);
}

export function handleSummary(data) {
  let out = {};
  if (typeof script.handleSummary === "function") {
    out = Object.assign({}, script.handleSummary(data));
  }
  out[%[5]s] = JSON.stringify(data);
  return out;
}
`

func writeWrapper(path, script, summaryPath string, thresholds map[string][]string) error {
	if thresholds == nil {
		thresholds = map[string][]string{}
	}
	scriptURL := (&url.URL{Scheme: "file", Path: filepath.ToSlash(script)}).String()
	var lits [4]string
	for i, v := range []any{scriptURL, thresholds, trendStats, summaryPath} {
		b, err := json.Marshal(v)
		if err != nil {
			return fmt.Errorf("write the k6 wrapper script: %w", err)
		}
		lits[i] = string(b)
	}
	js := fmt.Sprintf(wrapperJS, filepath.Base(script), lits[0], lits[1], lits[2], lits[3])
	if err := os.WriteFile(path, []byte(js), 0o600); err != nil {
		return fmt.Errorf("write the k6 wrapper script: %w", err)
	}
	return nil
}

// tailWriter forwards k6's output and keeps its last error line for messages. The lock
// keeps it safe should the two streams ever be copied by separate goroutines.
type tailWriter struct {
	mu      sync.Mutex
	w       io.Writer
	partial []byte
	lastErr string
	last    string
}

func (t *tailWriter) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.partial = append(t.partial, p...)
	for {
		i := bytes.IndexByte(t.partial, '\n')
		if i < 0 {
			break
		}
		line := strings.TrimSpace(string(t.partial[:i]))
		t.partial = t.partial[i+1:]
		if line == "" {
			continue
		}
		t.last = line
		if strings.Contains(line, "level=error") {
			t.lastErr = line
		}
	}
	if t.w == nil {
		return len(p), nil
	}
	return t.w.Write(p)
}

// lastError is k6's last error log message, or its last line.
func (t *tailWriter) lastError() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	line := t.lastErr
	if line == "" {
		line = t.last
	}
	if line == "" {
		return "no output"
	}
	if msg, ok := logField(line, "msg"); ok {
		return msg
	}
	return line
}

// logField extracts a field of a logfmt line such as `level=error msg="could not ..."`.
func logField(line, key string) (string, bool) {
	i := strings.Index(line, key+"=")
	if i < 0 {
		return "", false
	}
	rest := line[i+len(key)+1:]
	if !strings.HasPrefix(rest, `"`) {
		v, _, _ := strings.Cut(rest, " ")
		return v, true
	}
	var v string
	if err := json.NewDecoder(strings.NewReader(rest)).Decode(&v); err != nil {
		return strings.Trim(rest, `"`), true
	}
	return v, true
}
