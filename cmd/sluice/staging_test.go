package main

import (
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluice-ci/sluice/coordinator"
	exampleapp "github.com/sluice-ci/sluice/examples/app"
	"github.com/sluice-ci/sluice/internal/bus"
	"github.com/sluice-ci/sluice/loadtest"
	"github.com/sluice-ci/sluice/workers/contract"
	"github.com/sluice-ci/sluice/workers/load"
)

// The example app's staging pipeline (contract, then load) runs on a dev fleet against the
// app, and both stages' artifacts can be read back from the artifacts store.
func TestStagingPipelineInDevMode(t *testing.T) {
	if _, err := loadtest.FindK6(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("the staging pipeline needs k6: %v (run `make bin/k6`)", err)
		}
		t.Skipf("SKIPPING the staging pipeline: %v (run `make bin/k6`)", err)
	}
	srv := httptest.NewServer(exampleapp.NewHandler("staging"))
	defer srv.Close()
	url := startTestFleet(t, "contract,load")
	code, stdout, stderr := cli(t, "--nats", url, "run", "../../examples/app/pipeline.yaml", "--source", "../../examples/app",
		"--ref", "main", "--set", "STAGING_URL="+srv.URL, "--set", "LOAD_DURATION=2s", "--set", "LOAD_VUS=2")
	if code != exitOK {
		t.Fatalf("run: exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	id := runID(t, stdout)
	for _, want := range [][]string{{"contract", "passed"}, {"load", "passed"}} {
		if !hasLine(stdout, want...) {
			t.Errorf("run output has no line with %q:\n%s", want, stdout)
		}
	}

	nc, err := bus.Connect(t.Context(), bus.ConnectOptions{URL: url, Name: t.Name()})
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	store, err := js.ObjectStore(t.Context(), bus.NewNames(bus.DefaultPrefix).ArtifactsStore())
	if err != nil {
		t.Fatal(err)
	}
	run, err := coordinator.NewClient(nc, bus.NewNames(bus.DefaultPrefix)).Get(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []struct{ stage, name, want string }{
		{"contract", contract.JUnitArtifact, `failures="0"`},
		{"contract", contract.ReportArtifact, "contracts: 3 passed, 0 failed"},
		{"load", load.SummaryArtifact, `"http_req_duration"`},
	} {
		ref := findArtifact(run, a.stage, a.name)
		if ref == nil {
			t.Errorf("stage %s recorded no artifact %s", a.stage, a.name)
			continue
		}
		if !strings.HasPrefix(ref.GetObject(), id+"/"+a.stage+"/1.0.1/") {
			t.Errorf("artifact %s is stored as %s, not under its delivery's prefix", a.name, ref.GetObject())
		}
		r, err := store.Get(t.Context(), ref.GetObject())
		if err != nil {
			t.Errorf("artifact %s: %v", ref.GetObject(), err)
			continue
		}
		b, err := io.ReadAll(r)
		r.Close()
		if err != nil || !strings.Contains(string(b), a.want) {
			t.Errorf("artifact %s (%v) lacks %q", ref.GetObject(), err, a.want)
		}
	}

	// The same artifacts through the CLI, as a user downloads them.
	code, stdout, stderr = cli(t, "--nats", url, "artifacts", "list", id)
	if code != exitOK || !hasLine(stdout, "contract", contract.ReportArtifact) || !hasLine(stdout, "load", load.SummaryArtifact) {
		t.Fatalf("artifacts list: exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	out := filepath.Join(t.TempDir(), "report.txt")
	if code, _, stderr := cli(t, "--nats", url, "artifacts", "get", id, "contract", contract.ReportArtifact, "-o", out); code != exitOK {
		t.Fatalf("artifacts get: exit %d: %s", code, stderr)
	}
	if b, err := os.ReadFile(out); err != nil || !strings.Contains(string(b), "contracts: 3 passed, 0 failed") {
		t.Fatalf("downloaded report (%v):\n%s", err, b)
	}
	if code, _, stderr := cli(t, "--nats", url, "artifacts", "get", id, "contract", "nope.txt"); code != exitFailed || !strings.Contains(stderr, "no artifact") {
		t.Fatalf("artifacts get of a missing artifact: exit %d: %s", code, stderr)
	}
}
