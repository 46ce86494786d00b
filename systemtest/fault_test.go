// Package systemtest runs whole fleets of real `sluice` processes against a real nats-server
// and breaks them: workers and coordinators killed with SIGKILL mid-run, runs cancelled while
// their steps run, garbage on the task subjects.
package systemtest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-ci/sluice/coordinator"
	"github.com/sluice-ci/sluice/internal/bus"
	"github.com/sluice-ci/sluice/internal/bus/bustest"
	"github.com/sluice-ci/sluice/internal/procgroup"
	"github.com/sluice-ci/sluice/internal/testdir"
	sluicev1 "github.com/sluice-ci/sluice/proto/sluice/v1"
)

var sluiceBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "sluice-systemtest-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	sluiceBin = filepath.Join(dir, "sluice")
	build := exec.Command("go", "build", "-o", sluiceBin, "github.com/sluice-ci/sluice/cmd/sluice")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build sluice:", err)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// ackWait is short so a killed worker's task comes back within the test's patience.
const ackWait = "2s"

// proc is a running sluice process whose output is kept for failure messages.
type proc struct {
	name string
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

func start(t *testing.T, name string, args ...string) *proc {
	t.Helper()
	p := &proc{name: name, out: &syncBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(sluiceBin, args...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	procgroup.Set(p.cmd)
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("--- output of %s:\n%s", name, p.out.String())
		}
	})
	return p
}

// kill SIGKILLs the process and its group (its running steps die with it, as on a crashed
// machine).
func (p *proc) kill() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = procgroup.Kill(p.cmd)
	<-p.done
}

type cluster struct {
	t      *testing.T
	env    *bustest.Env
	url    string
	client *coordinator.Client
}

// newCluster starts a real nats-server (in this process, so killing sluice processes never
// kills the server) provisioned with a short AckWait.
func newCluster(t *testing.T) *cluster {
	t.Helper()
	env := bustest.Start(t, bus.Config{AckWait: 2 * time.Second})
	return &cluster{t: t, env: env, url: env.Server.ClientURL(), client: coordinator.NewClient(env.NC, env.Config.Names)}
}

func (c *cluster) coordinator(name string) *proc {
	p := start(c.t, name, "coordinator", "--nats", c.url, "--http", "")
	c.waitAPI()
	return p
}

func (c *cluster) worker(name, kinds string) *proc {
	args := []string{"worker", "--nats", c.url, "--ack-wait", ackWait, "--kinds", kinds, "--id", name,
		"--concurrency", "2", "--grace", "1s", "--work-dir", testdir.Reachable(c.t), "--cache-dir", c.t.TempDir()}
	if !isolated {
		args = append(args, "--unsafe-shared-user")
	}
	return start(c.t, name, args...)
}

// isolated reports whether workers run steps as users of their own, which needs root; CI
// runs as root, and a developer's run without it tests the rest with shared users.
var isolated = os.Geteuid() == 0

func (c *cluster) waitAPI() {
	c.t.Helper()
	waitFor(c.t, "the coordinator API", 20*time.Second, func() bool {
		_, err := c.client.List(c.t.Context(), &sluicev1.ListRunsRequest{})
		return err == nil
	})
}

func waitFor(t *testing.T, what string, limit time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", limit, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (c *cluster) submit(yaml string, ref string) string {
	c.t.Helper()
	st, err := c.client.Submit(c.t.Context(), &sluicev1.SubmitRunRequest{SpecYaml: yaml, File: "pipeline.yaml", Ref: ref})
	if err != nil {
		c.t.Fatalf("submit: %v", err)
	}
	return st.GetId()
}

func (c *cluster) wait(id string, limit time.Duration) *sluicev1.RunState {
	c.t.Helper()
	var st *sluicev1.RunState
	waitFor(c.t, "run "+id+" to finish", limit, func() bool {
		var err error
		st, err = c.client.Get(c.t.Context(), id)
		return err == nil && st.GetStatus().Terminal()
	})
	return st
}

func (c *cluster) stage(id, name string) *sluicev1.StageState {
	c.t.Helper()
	st, err := c.client.Get(c.t.Context(), id)
	if err != nil {
		c.t.Fatal(err)
	}
	for _, s := range st.GetStages() {
		if s.GetName() == name {
			return s
		}
	}
	c.t.Fatalf("run %s has no stage %s", id, name)
	return nil
}

// finals returns the FINAL results stored for one stage of a run.
func (c *cluster) finals(run, stage string) []*sluicev1.Result {
	c.t.Helper()
	var out []*sluicev1.Result
	for _, msg := range bustest.Stored(c.t, c.env.JS, c.env.Config.Names.ResultsStream(), c.env.Config.Names.RunResults(run)) {
		var r sluicev1.Result
		if err := proto.Unmarshal(msg.Data(), &r); err != nil {
			c.t.Fatal(err)
		}
		if r.GetStage() == stage && r.GetPhase() == sluicev1.ResultPhase_RESULT_PHASE_FINAL {
			out = append(out, &r)
		}
	}
	return out
}

// stillTicking reports how much a file grows in a second, after a moment for a dying
// process tree to go.
func stillTicking(path string) int64 {
	time.Sleep(300 * time.Millisecond)
	size := func() int64 { fi, _ := os.Stat(path); return fi.Size() }
	before := size()
	time.Sleep(time.Second)
	return size() - before
}

func waitFile(t *testing.T, path string) {
	t.Helper()
	waitFor(t, path, 30*time.Second, func() bool { _, err := os.Stat(path); return err == nil })
}

// The worker process alone is SIGKILLed (the OOM killer, kill -9): its running step, and the
// daemon the step left in a session of its own, must end with it rather than run on beside
// the redelivered copy.
func TestWorkerKilledMidStageIsRedelivered(t *testing.T) {
	c := newCluster(t)
	c.coordinator("coordinator")
	marks := testdir.Shared(t)
	w1 := c.worker("w1", "static")
	ticks := filepath.Join(marks, "ticks")
	id := c.submit(fmt.Sprintf(`version: 1
name: kill-worker
stages:
  slow:
    kind: static
    run: ["echo $SLUICE_ATTEMPT >> %[1]s/starts; [ $(wc -l < %[1]s/starts) -ge 2 ] || { setsid sh -c 'while :; do echo >> %[2]s; sleep 0.05; done' & sleep 300; }"]
`, marks, ticks), "main")
	waitFile(t, ticks)
	if isolated {
		_ = w1.cmd.Process.Kill()
		<-w1.done
		if n := stillTicking(ticks); n > 0 {
			t.Fatalf("the killed worker's step went on: %d more ticks in a second after the worker died", n)
		}
	} else {
		t.Log("not root: steps share the worker's user, so the test kills the worker's process group")
		w1.kill()
	}
	c.worker("w2", "static")
	st := c.wait(id, 60*time.Second)
	if st.GetStatus() != sluicev1.RunStatus_RUN_STATUS_PASSED {
		t.Fatalf("run %s: %s", st.GetStatus().Short(), st.GetStages()[0].GetMessage())
	}
	sh := st.GetStages()[0].GetShards()[0]
	if sh.GetWorker() != "w2" || sh.GetDelivery() != 2 {
		t.Fatalf("stage finished on %s, delivery %d; want w2 on the 2nd delivery", sh.GetWorker(), sh.GetDelivery())
	}
	if finals := c.finals(id, "slow"); len(finals) != 1 {
		t.Fatalf("%d final results recorded for the stage, want exactly 1", len(finals))
	}
}

func TestCoordinatorKilledMidRunAndRestarted(t *testing.T) {
	c := newCluster(t)
	coord := c.coordinator("c1")
	c.worker("w1", "static,test")
	marks := testdir.Shared(t)
	id := c.submit(fmt.Sprintf(`version: 1
name: kill-coordinator
stages:
  first:  {kind: static, run: ["touch %[1]s/first; while [ ! -e %[1]s/go ]; do sleep 0.05; done"]}
  second: {kind: test, needs: [first], run: ["echo second"]}
  third:  {kind: static, needs: [second], run: ["echo third"]}
`, marks), "main")
	waitFile(t, filepath.Join(marks, "first"))
	coord.kill()
	// The stage finishes while no coordinator runs; its result waits in the stream.
	if err := os.WriteFile(filepath.Join(marks, "go"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	c.coordinator("c2")
	st := c.wait(id, 60*time.Second)
	if st.GetStatus() != sluicev1.RunStatus_RUN_STATUS_PASSED {
		t.Fatalf("run %s after the coordinator restart", st.GetStatus().Short())
	}
}

func TestCancelKillsStepsAndPurgesQueuedTasks(t *testing.T) {
	c := newCluster(t)
	c.coordinator("coordinator")
	c.worker("w1", "static")
	marks := testdir.Shared(t)
	// `running` records its process group; `queued` is an e2e stage no worker serves.
	id := c.submit(fmt.Sprintf(`version: 1
name: cancel
stages:
  running: {kind: static, run: ["sleep 300 & cut -d' ' -f5 /proc/self/stat > %[1]s/pgid; wait"]}
  queued:  {kind: e2e, run: ["echo never"]}
`, marks), "main")
	pgidFile := filepath.Join(marks, "pgid")
	waitFile(t, pgidFile)
	var pgid int
	waitFor(t, "the pgid", 10*time.Second, func() bool {
		data, _ := os.ReadFile(pgidFile)
		pgid, _ = strconv.Atoi(strings.TrimSpace(string(data)))
		return pgid > 0
	})
	if err := syscall.Kill(-pgid, 0); err != nil {
		t.Fatalf("the step's process group %d is not running: %v", pgid, err)
	}
	out, err := exec.Command(sluiceBin, "cancel", id, "--nats", c.url).CombinedOutput()
	if err != nil {
		t.Fatalf("sluice cancel: %v\n%s", err, out)
	}
	cancelled := time.Now()
	waitFor(t, "the step's process group to die", 5*time.Second, func() bool {
		return errors.Is(syscall.Kill(-pgid, 0), syscall.ESRCH)
	})
	t.Logf("process group gone %s after the cancel", time.Since(cancelled).Round(time.Millisecond))
	st := c.wait(id, 10*time.Second)
	if st.GetStatus() != sluicev1.RunStatus_RUN_STATUS_CANCELLED {
		t.Fatalf("run %s, want cancelled", st.GetStatus().Short())
	}
	stream, err := c.env.JS.Stream(t.Context(), c.env.Config.Names.TasksStream())
	if err != nil {
		t.Fatal(err)
	}
	info, err := stream.Info(t.Context(), jetstream.WithSubjectFilter(c.env.Config.Names.RunTasks(id)))
	if err != nil {
		t.Fatal(err)
	}
	if n := len(info.State.Subjects); n != 0 {
		t.Fatalf("%d task subjects of the cancelled run still queued: %v", n, info.State.Subjects)
	}
}

func TestGarbageTaskIsTerminatedAndTheWorkerKeepsServing(t *testing.T) {
	c := newCluster(t)
	c.coordinator("coordinator")
	w := c.worker("w1", "static")
	msg := nats.NewMsg(c.env.Config.Names.Task("static", "default", "garbage1"))
	msg.Data = []byte("\xff\xfe definitely not a protobuf Task")
	if _, err := c.env.JS.PublishMsg(context.Background(), msg); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the worker to report the garbage task", 20*time.Second, func() bool {
		return strings.Contains(w.out.String(), "garbage1")
	})
	id := c.submit("version: 1\nname: after-garbage\nstages:\n  ok: {kind: static, run: [\"true\"]}\n", "main")
	if st := c.wait(id, 30*time.Second); st.GetStatus() != sluicev1.RunStatus_RUN_STATUS_PASSED {
		t.Fatalf("run after the garbage task: %s", st.GetStatus().Short())
	}
	stream, _ := c.env.JS.Stream(t.Context(), c.env.Config.Names.TasksStream())
	info, _ := stream.Info(t.Context())
	if info.State.Msgs != 0 {
		t.Fatalf("%d messages left in the task queue; the garbage must be terminated, not redelivered", info.State.Msgs)
	}
	select {
	case <-w.done:
		t.Fatal("the worker exited")
	default:
	}
}

func TestRunCommandFollowsToTheEnd(t *testing.T) {
	c := newCluster(t)
	c.coordinator("coordinator")
	c.worker("w1", "all")
	dir := t.TempDir()
	pipeline := filepath.Join(dir, "pipeline.yaml")
	if err := os.WriteFile(pipeline, []byte(`version: 1
name: follow
stages:
  ok:   {kind: static, run: ["echo fine"]}
  bad:  {kind: test, needs: [ok], run: ["echo boom-on-stdout; exit 3"]}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(sluiceBin, "run", pipeline, "--nats", c.url, "--ref", "main")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("sluice run of a failing pipeline: %v, want exit 1\n%s", err, out.String())
	}
	text := out.String()
	for _, want := range []string{"ok", "bad", "boom-on-stdout", "failed"} {
		if !strings.Contains(text, want) {
			t.Errorf("output lacks %q:\n%s", want, text)
		}
	}
	lines := 0
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		lines++
	}
	if lines < 4 {
		t.Errorf("only %d lines of progress:\n%s", lines, text)
	}
}
