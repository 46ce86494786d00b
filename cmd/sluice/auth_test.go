package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-ci/sluice/internal/auth"
	"github.com/sluice-ci/sluice/internal/bus"
	"github.com/sluice-ci/sluice/internal/evidence"
	sluicev1 "github.com/sluice-ci/sluice/proto/sluice/v1"
)

// startAuthFleet starts an in-process fleet with authentication, as `sluice dev --auth`
// does, and returns its NATS URL and auth directory.
func startAuthFleet(t *testing.T, kinds string) (string, auth.Layout) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "auth")
	if code, stdout, stderr := cli(t, "auth", "init", "--out", dir); code != exitOK {
		t.Fatalf("auth init: exit %d\n%s\n%s", code, stdout, stderr)
	}
	ks, err := parseKinds(kinds)
	if err != nil {
		t.Fatal(err)
	}
	a := &app{stdout: io.Discard, stderr: io.Discard, log: discardLogger(), prefix: bus.DefaultPrefix}
	f, err := a.startFleet(t.Context(), fleetOptions{
		dataDir: t.TempDir(), natsListen: "127.0.0.1:-1", authDir: dir, kinds: ks, pool: "default", concurrency: 2,
	})
	if err != nil {
		t.Fatalf("start fleet: %v", err)
	}
	watchTestFleet(t, f)
	return f.natsURL, auth.Layout{Dir: dir}
}

func TestAuthInitAndAddUser(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "auth")
	code, stdout, stderr := cli(t, "auth", "init", "--out", dir, "--pools", "default,gpu")
	if code != exitOK {
		t.Fatalf("auth init: exit %d\n%s\n%s", code, stdout, stderr)
	}
	l := auth.Layout{Dir: dir}
	for _, r := range auth.Roles() {
		if !strings.Contains(stdout, auth.Principal(r, auth.DefaultUser)) {
			t.Errorf("init does not list %s:\n%s", r, stdout)
		}
		for _, f := range []string{l.Creds(r, auth.DefaultUser), l.Token(r, auth.DefaultUser)} {
			if fi, err := os.Stat(f); err != nil || fi.Mode().Perm() != 0o600 {
				t.Errorf("%s: %v (mode %v), want a file only its owner reads", f, err, fi.Mode().Perm())
			}
		}
	}
	id, err := bus.ReadIdentity(l.Creds(auth.WorkerRole(sluicev1.StageKind_STAGE_KIND_E2E), auth.DefaultUser))
	if err != nil || strings.Join(id.Pools, ",") != "default,gpu" {
		t.Fatalf("worker-e2e pools %v (%v)", id.Pools, err)
	}
	if code, _, stderr := cli(t, "auth", "init", "--out", dir); code != exitUsage || !strings.Contains(stderr, "add-user") {
		t.Errorf("init over an existing fleet: exit %d\n%s", code, stderr)
	}
	code, stdout, stderr = cli(t, "auth", "add-user", "approver", "alice", "--dir", dir)
	if code != exitOK || !strings.Contains(stdout, "approver:alice") {
		t.Fatalf("add-user: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if id, err := bus.ReadIdentity(l.Creds(auth.RoleApprover, "alice")); err != nil || id.Principal() != "approver:alice" {
		t.Fatalf("alice's credentials say %s (%v)", id.Principal(), err)
	}
	for _, args := range [][]string{
		{"auth", "add-user", "approver", "alice", "--dir", dir},
		{"auth", "add-user", "root", "eve", "--dir", dir},
		{"auth", "add-user", "approver", "Eve.Smith", "--dir", dir},
		{"auth", "add-user", "approver", "bob", "--dir", dir, "--pools", "gpu"},
		{"auth", "add-user", "approver", "bob"},
		{"auth", "init"},
	} {
		if code, _, stderr := cli(t, args...); code != exitUsage {
			t.Errorf("%v: exit %d, want 2\n%s", args, code, stderr)
		}
	}
}

// TestClientsOnAnAuthenticatedFleet: each client command acts as the principal of its
// credentials, and the server or the coordinator refuses what its role may not do.
func TestClientsOnAnAuthenticatedFleet(t *testing.T) {
	url, l := startAuthFleet(t, "all")
	src := copyTree(t, "testdata/tree")
	as := func(r auth.Role) []string { return []string{"--nats", url, "--creds", l.Creds(r, auth.DefaultUser)} }

	code, _, stderr := cli(t, "--nats", url, "runs", "list")
	if code == exitOK || !strings.Contains(stderr, "--creds") {
		t.Errorf("runs list without credentials: exit %d, want a hint about --creds:\n%s", code, stderr)
	}
	code, _, stderr = cli(t, append(as(auth.RoleObserver), "run", "testdata/pass.yaml", "--source", src, "--ref", "main")...)
	if code != exitFailed || !strings.Contains(stderr, "refused it to observer:default") {
		t.Errorf("run as an observer: exit %d, want 1 saying who may not:\n%s", code, stderr)
	}
	code, stdout, stderr := cli(t, append(as(auth.RoleSubmitter), "run", "testdata/pass.yaml", "--source", src, "--ref", "main")...)
	if code != exitOK {
		t.Fatalf("run as the submitter: exit %d\n%s\n%s", code, stdout, stderr)
	}
	id := runID(t, stdout)
	code, stdout, stderr = cli(t, append(as(auth.RoleObserver), "runs", "show", id, "--json")...)
	if code != exitOK || !strings.Contains(stdout, `"submittedBy":"submitter:default"`) || !strings.Contains(stdout, `"refProtected":true`) {
		t.Errorf("runs show as an observer: exit %d\n%s\n%s", code, stdout, stderr)
	}
	code, _, stderr = cli(t, append(as(auth.RoleApprover), "approve", id, "read")...)
	if code != exitFailed || !strings.Contains(stderr, "nothing to approve") {
		t.Errorf("approving a stage that does not wait: exit %d\n%s", code, stderr)
	}
	code, _, stderr = cli(t, append(as(auth.RoleSubmitter), "cancel", id)...)
	if code != exitFailed || !strings.Contains(stderr, "refused it to submitter:default") {
		t.Errorf("cancel as the submitter: exit %d, want a refusal naming the principal\n%s", code, stderr)
	}
}

// TestRunRecordsTheCommitAndTheRefOfItsCheckout: a run carries the commit its source was
// checked out at, and --ref cannot claim another branch than the checkout's.
func TestRunRecordsTheCommitAndTheRefOfItsCheckout(t *testing.T) {
	url := startTestFleet(t, "all")
	dir := copyTree(t, "testdata/tree")
	data, err := os.ReadFile("testdata/pass.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "pipeline.yaml"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"init", "-q", "-b", "feature"}, {"add", "."}, {"-c", "user.email=t@t", "-c", "user.name=t", "commit", "-q", "-m", "x"}} {
		if out, err := exec.Command("git", append([]string{"-C", dir}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	head, err := exec.Command("git", "-C", dir, "rev-parse", "HEAD").Output()
	if err != nil {
		t.Fatal(err)
	}
	commit := strings.TrimSpace(string(head))
	pipeline := filepath.Join(dir, "pipeline.yaml")
	code, _, stderr := cli(t, "--nats", url, "run", pipeline, "--ref", "main")
	if code != exitUsage || !strings.Contains(stderr, "checkout of branch feature") {
		t.Fatalf("--ref main from a checkout of feature: exit %d, want 2:\n%s", code, stderr)
	}
	code, stdout, stderr := cli(t, "--nats", url, "run", pipeline)
	if code != exitOK || !strings.Contains(stdout, "ref feature") || !strings.Contains(stdout, "commit "+commit[:12]) || !hasLine(stdout, "main-only", "skipped") {
		t.Fatalf("run: exit %d\n%s\n%s", code, stdout, stderr)
	}
	_, show, _ := cli(t, "--nats", url, "runs", "show", runID(t, stdout), "--json")
	if !strings.Contains(show, `"commit":"`+commit+`"`) {
		t.Fatalf("the run does not record commit %s:\n%s", commit, show)
	}
}

// TestEventsKeyRefusesWhatTheCoordinatorDidNotSign: an admin (who may publish anything)
// stores a run.passed for a failed run; `sluice events --key` reports it forged and hides it,
// and `sluice run` takes its exit code from the coordinator, not from the stream.
func TestEventsKeyRefusesWhatTheCoordinatorDidNotSign(t *testing.T) {
	url, l := startAuthFleet(t, "all")
	as := func(r auth.Role) []string { return []string{"--nats", url, "--creds", l.Creds(r, auth.DefaultUser)} }
	code, stdout, _ := cli(t, append(as(auth.RoleSubmitter), "run", "testdata/fail.yaml", "--no-source", "--ref", "feature")...)
	if code != exitFailed {
		t.Fatalf("run: exit %d", code)
	}
	id := runID(t, stdout)
	nc, err := bus.Connect(t.Context(), bus.ConnectOptions{URL: url, CredsFile: l.Creds(auth.RoleAdmin, auth.DefaultUser)})
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	forged, _ := proto.Marshal(&sluicev1.Event{Id: id + "/999", Type: "run.passed", RunId: id, Pipeline: "fail", Message: "all good"})
	msg := nats.NewMsg(bus.NewNames("").Event("fail", id, "run.passed"))
	msg.Data = forged
	if err := nc.PublishMsg(msg); err != nil {
		t.Fatal(err)
	}
	_ = nc.Flush()
	code, stdout, stderr := cli(t, append(as(auth.RoleObserver), "events", "--run", id, "--key", l.EvidencePub())...)
	if code != exitOK || !strings.Contains(stderr, "FORGED") || strings.Contains(stdout, "all good") || !strings.Contains(stdout, "run.failed") {
		t.Fatalf("events --key: exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
}

// checkDemoEvidence: the evidence the demo's promotion left in data verifies with the
// fleet's key, and one changed byte makes `sluice evidence verify` refuse it.
func checkDemoEvidence(t *testing.T, data string) {
	t.Helper()
	file := filepath.Join(data, "evidence", "deploy-gate.intoto.json")
	key := auth.Layout{Dir: filepath.Join(data, "auth")}.EvidencePub()
	code, stdout, stderr := cli(t, "evidence", "verify", file, "--key", key)
	if code != exitOK || !strings.Contains(stdout, "verified: promoted of deploy-gate") || !strings.Contains(stdout, "submitted by submitter:default") {
		t.Fatalf("evidence verify: exit %d\n%s\n%s", code, stdout, stderr)
	}
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var env evidence.Envelope
	if err := json.Unmarshal(raw, &env); err != nil {
		t.Fatal(err)
	}
	payload, _ := base64.StdEncoding.DecodeString(env.Payload)
	payload = bytes.Replace(payload, []byte(`"decision":"promoted"`), []byte(`"decision":"promoteD"`), 1)
	env.Payload = base64.StdEncoding.EncodeToString(payload)
	tampered, _ := json.Marshal(env)
	bad := filepath.Join(t.TempDir(), "tampered.json")
	if err := os.WriteFile(bad, tampered, 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := cli(t, "evidence", "verify", bad, "--key", key); code != exitFailed || !strings.Contains(stderr, "invalid evidence") {
		t.Fatalf("tampered evidence: exit %d, want 1\n%s", code, stderr)
	}
}

// copyTree copies a directory into a fresh temporary one, outside any git checkout.
func copyTree(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	err := filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), data, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

func TestLoopbackIsTheOnlyPlaceWithoutAWarning(t *testing.T) {
	for url, want := range map[string]bool{
		"nats://127.0.0.1:4222": true, "nats://localhost:4222": true, "nats://[::1]:4222": true,
		"nats://10.0.0.5:4222": false, "nats://ci-nats:4222": false, "not a url": false,
	} {
		if got := loopbackURL(url); got != want {
			t.Errorf("loopbackURL(%q) = %v, want %v", url, got, want)
		}
	}
	for addr, want := range map[string]bool{"127.0.0.1:4222": true, "0.0.0.0:4222": false, ":4222": false} {
		if got := loopbackListen(addr); got != want {
			t.Errorf("loopbackListen(%q) = %v, want %v", addr, got, want)
		}
	}
}
