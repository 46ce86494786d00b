package workers

import (
	"context"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/sluice-ci/sluice/internal/bus/bustest"
	"github.com/sluice-ci/sluice/internal/testdir"
	sluicev1 "github.com/sluice-ci/sluice/proto/sluice/v1"
	"github.com/sluice-ci/sluice/workers/internal/proctest"
)

// These tests run a step as an attacker would write it and assert the worker's walls held.
// They need root: without it the worker runs steps as itself, which they would show.

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("the isolation tests need root (CI runs as root)")
		}
		t.Skip("SKIPPING the isolation tests: they need root to run steps as other users")
	}
}

// A step reads nothing of the worker: not its environment (/proc/*/environ), not its
// source cache, not another task's tree.
func TestStepsCannotReachTheWorker(t *testing.T) {
	needRoot(t)
	const marker = "worker-only-marker-5d41402abc4b2a76"
	h := newHarness(t)
	cache, work := t.TempDir(), testdir.Reachable(t)
	if err := os.WriteFile(filepath.Join(cache, "creds"), []byte(marker), 0o600); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(work, "other-task")
	if err := os.Mkdir(other, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(other, "tree"), []byte(marker), 0o644); err != nil {
		t.Fatal(err)
	}
	attacks := map[string]string{
		// The worker is this test process; its environment at exec holds PATH.
		"environ":      `cat /proc/` + strconv.Itoa(os.Getpid()) + `/environ 2>&1 | tr '\0' '\n'; true`,
		"parent":       `cat /proc/$PPID/environ 2>/dev/null | tr '\0' '\n'; cat /proc/1/environ 2>/dev/null | tr '\0' '\n'; true`,
		"cache":        `cat ` + cache + `/* 2>&1; ls ` + cache + ` 2>&1; true`,
		"other task":   `cat ` + other + `/tree 2>&1; ls ` + work + ` 2>&1; true`,
		"poison cache": `echo evil > ` + cache + `/poison 2>&1; true`,
	}
	for name, step := range attacks {
		h.publish(t, newTask("iso-"+strings.ReplaceAll(name, " ", "-"), step))
	}
	h.start(t, Config{CacheDir: cache, WorkDir: work, Concurrency: 2})
	for name := range attacks {
		run := "iso-" + strings.ReplaceAll(name, " ", "-")
		t.Run(name, func(t *testing.T) {
			if res := h.final(t, run); res.GetOutcome() != sluicev1.Outcome_OUTCOME_PASSED {
				t.Fatalf("%s %q", res.GetOutcome(), res.GetMessage())
			}
			var out strings.Builder
			for _, c := range h.logChunks(t, run, "build") {
				if c.GetStream() != StreamSluice {
					out.Write(c.GetData())
				}
			}
			if strings.Contains(out.String(), marker) || strings.Contains(out.String(), "PATH=") {
				t.Fatalf("the step read the worker's data:\n%s", out.String())
			}
		})
	}
	if _, err := os.Stat(filepath.Join(cache, "poison")); err == nil {
		t.Fatal("a step wrote into the worker's source cache")
	}
}

// Every process a step starts ends with it: a setsid'd daemon does not outlive a step that
// exits, nor one that is cancelled.
func TestStepProcessesEndWithTheStep(t *testing.T) {
	needRoot(t)
	h := newHarness(t)
	dir := testdir.Shared(t)
	daemon := func(file string) string {
		return `setsid sh -c "cut -d' ' -f4 /proc/self/stat > ` + file + `; exec sleep 300" < /dev/null > /dev/null 2>&1 &`
	}
	exited, cancelled := filepath.Join(dir, "exited"), filepath.Join(dir, "cancelled")
	h.publish(t, newTask("daemon-exit", daemon(exited)+" sleep 0.5"))
	h.publish(t, newTask("daemon-cancel", daemon(cancelled)+" sleep 300"))
	h.start(t, Config{Concurrency: 2})
	if res := h.final(t, "daemon-exit"); res.GetOutcome() != sluicev1.Outcome_OUTCOME_PASSED {
		t.Fatalf("%s %q", res.GetOutcome(), res.GetMessage())
	}
	proctest.WaitGone(t, proctest.ReadPID(t, exited, waitLimit), 5*time.Second)

	pid := proctest.ReadPID(t, cancelled, waitLimit)
	sig := cancelSignal(t, "daemon-cancel")
	if err := h.env.NC.Publish(h.names.Cancel("daemon-cancel"), sig); err != nil {
		t.Fatal(err)
	}
	if res := h.final(t, "daemon-cancel"); res.GetOutcome() != sluicev1.Outcome_OUTCOME_CANCELLED {
		t.Fatalf("%s %q", res.GetOutcome(), res.GetMessage())
	}
	proctest.WaitGone(t, pid, 5*time.Second)
}

// A worker that starts kills what runs under the step users it claims: the orphans of a
// worker killed with its steps running.
func TestWorkerEndsOrphansBeforeTakingWork(t *testing.T) {
	needRoot(t)
	const base = 310000
	orphan := osexec.Command("sleep", "300")
	orphan.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: base + 1, Gid: base}, Setsid: true}
	if err := orphan.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = orphan.Process.Kill(); _ = orphan.Wait() })
	exited := make(chan struct{})
	go func() { _ = orphan.Wait(); close(exited) }()
	h := newHarness(t)
	h.start(t, Config{StepUID: base, StepUIDs: 4})
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		t.Fatal("the orphan running as a step user survived the worker's start")
	}
}

func cancelSignal(t *testing.T, run string) []byte {
	t.Helper()
	data, err := proto.Marshal(&sluicev1.CancelSignal{RunId: run, Reason: "test"})
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// A worker that cannot isolate steps refuses to start, unless told to share its user.
func TestWorkerWithoutIsolationRefusesToStart(t *testing.T) {
	h := newHarness(t)
	w, err := New(h.env.NC, Config{Bus: h.env.Config, WorkDir: t.TempDir(), CacheDir: t.TempDir(), Logger: bustest.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	err = w.Run(context.Background())
	want := "cannot cross"
	if os.Geteuid() != 0 {
		want = "unsafe-shared-user"
	}
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("Run = %v, want a refusal saying %q", err, want)
	}
}
