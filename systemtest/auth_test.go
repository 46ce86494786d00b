package systemtest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-ci/sluice/coordinator"
	"github.com/sluice-ci/sluice/internal/auth"
	"github.com/sluice-ci/sluice/internal/bus"
	"github.com/sluice-ci/sluice/internal/bus/bustest"
	"github.com/sluice-ci/sluice/internal/testdir"
	sluicev1 "github.com/sluice-ci/sluice/proto/sluice/v1"
)

// TestAuthenticatedFleetOfProcesses runs a fleet as separate machines would: a server with
// the configuration `sluice auth init` wrote, a coordinator and a worker process each with
// their own credentials, a worker killed mid-stage and replaced, and the CLI as the CI
// submitter. A worker started with another kind's credentials refuses to start.
func TestAuthenticatedFleetOfProcesses(t *testing.T) {
	s := bustest.StartSecured(t, bus.Config{AckWait: 2 * time.Second})
	url := s.Server.ClientURL()
	start(t, "coordinator", "coordinator", "--nats", url, "--auth", s.Dir, "--http", "")
	client := coordinator.NewClient(s.NC, s.Config.Names)
	waitFor(t, "the coordinator API", 20*time.Second, func() bool {
		_, err := client.List(t.Context(), &sluicev1.ListRunsRequest{})
		return err == nil
	})
	worker := func(name string) *proc {
		return start(t, name, "worker", "--nats", url, "--auth", s.Dir, "--ack-wait", ackWait, "--kinds", "static,test",
			"--id", name, "--grace", "1s", "--work-dir", testdir.Reachable(t), "--cache-dir", t.TempDir())
	}
	first := worker("w1")

	wrong := exec.Command(sluiceBin, "worker", "--nats", url, "--creds", s.Layout.Creds(auth.WorkerRole(sluicev1.StageKind_STAGE_KIND_TEST), auth.DefaultUser), "--kinds", "static")
	out, err := wrong.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "may not serve kind static") {
		t.Fatalf("a worker with worker-test credentials serving static: %v\n%s", err, out)
	}

	dir := testdir.Shared(t)
	marker := filepath.Join(dir, "started")
	pipeline := filepath.Join(dir, "pipeline.yaml")
	yaml := "version: 1\nname: web\nstages:\n" +
		"  slow: {kind: static, run: [\"touch " + marker + "; sleep 3\"]}\n" +
		"  test: {kind: test, needs: [slow], run: [\"true\"]}\n" +
		"  deploy: {kind: static, needs: [test], when: {branch: main}, run: [\"true\"]}\n"
	if err := os.WriteFile(pipeline, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	run := exec.Command(sluiceBin, "run", pipeline, "--nats", url, "--creds", s.Layout.Creds(auth.RoleSubmitter, auth.DefaultUser), "--no-source", "--ref", "main")
	runOut := &syncBuffer{}
	run.Stdout, run.Stderr = runOut, runOut
	if err := run.Start(); err != nil {
		t.Fatal(err)
	}
	waitFile(t, marker)
	first.kill()
	worker("w2")
	if err := run.Wait(); err != nil {
		t.Fatalf("sluice run as the submitter: %v\n%s", err, runOut.String())
	}
	for _, want := range []string{"deploy", "passed"} {
		if !strings.Contains(runOut.String(), want) {
			t.Fatalf("run output lacks %q:\n%s", want, runOut.String())
		}
	}
	id := strings.Fields(strings.TrimPrefix(strings.SplitN(runOut.String(), "\n", 2)[0], "run "))[0]
	st, err := client.Get(t.Context(), strings.TrimSuffix(id, ":"))
	if err != nil {
		t.Fatal(err)
	}
	if st.GetSubmittedBy() != "submitter:default" || !st.GetRefProtected() {
		t.Fatalf("run submitted by %q, protected %v", st.GetSubmittedBy(), st.GetRefProtected())
	}
	if sh := st.GetStages()[0].GetShards()[0]; sh.GetWorker() != "w2" || sh.GetDelivery() < 2 {
		t.Fatalf("the slow stage finished on %s at delivery %d, want the replacement worker", sh.GetWorker(), sh.GetDelivery())
	}
}
