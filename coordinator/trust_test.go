package coordinator

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-ci/sluice/coordinator/decide"
	"github.com/sluice-ci/sluice/internal/auth"
	"github.com/sluice-ci/sluice/internal/bus"
	"github.com/sluice-ci/sluice/internal/bus/bustest"
	"github.com/sluice-ci/sluice/internal/evidence"
	"github.com/sluice-ci/sluice/internal/testdir"
	sluicev1 "github.com/sluice-ci/sluice/proto/sluice/v1"
	"github.com/sluice-ci/sluice/workers"
)

// These tests attack a fleet that runs with `sluice auth init`'s configuration on a real
// server: every part and every attacker connects with its own role's credentials.

var static = sluicev1.StageKind_STAGE_KIND_STATIC

// startSecuredCoordinator runs a coordinator with the coordinator's credentials and the
// fleet's trust file, policy and evidence key.
func startSecuredCoordinator(t *testing.T, s *bustest.Secured) *Coordinator {
	t.Helper()
	nc, _ := s.Connect(t, auth.RoleCoordinator, auth.DefaultUser)
	env := s.Env
	env.NC = nc
	c, _ := startCoordinator(t, &env, func(c *Config) { c.Auth = s.Fleet(t) })
	return c
}

// startSecuredWorker runs the real worker runtime for kind as the user name of its role.
func startSecuredWorker(t *testing.T, s *bustest.Secured, kind sluicev1.StageKind, name string) {
	t.Helper()
	nc, _ := s.Connect(t, auth.WorkerRole(kind), name)
	w, err := workers.New(nc, workers.Config{
		Bus: s.Config, Kinds: []sluicev1.StageKind{kind}, ID: name, WorkDir: testdir.Reachable(t), CacheDir: t.TempDir(), Logger: testLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		// A test that ended early (skipped) may stop the worker while it is still starting.
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("worker: %v", err)
		}
	})
}

func clientAs(t *testing.T, s *bustest.Secured, r auth.Role, name string) *Client {
	t.Helper()
	nc, _ := s.Connect(t, r, name)
	return NewClient(nc, s.Config.Names)
}

func submitYAML(t *testing.T, c *Client, ref, yaml string) *sluicev1.RunState {
	t.Helper()
	st, err := c.Submit(t.Context(), &sluicev1.SubmitRunRequest{SpecYaml: yaml, File: "pipeline.yaml", Ref: ref})
	if err != nil {
		t.Fatalf("submit as %s: %v", c.Identity().Principal(), err)
	}
	return st
}

// waitStage waits until stage of run is in status.
func waitStage(t *testing.T, env *bustest.Env, run, stage string, status sluicev1.StageStatus) *sluicev1.RunState {
	t.Helper()
	client := NewClient(env.NC, env.Config.Names)
	var st *sluicev1.RunState
	waitFor(t, fmt.Sprintf("stage %s to be %s", stage, status.Short()), func() bool {
		var err error
		st, err = client.Get(t.Context(), run)
		if err != nil {
			return false
		}
		for _, s := range st.GetStages() {
			if s.GetName() == stage && s.GetStatus() == status {
				return true
			}
		}
		return false
	})
	return st
}

// storedResult returns the first stored result of run whose phase is phase.
func storedResult(t *testing.T, env *bustest.Env, run string, phase sluicev1.ResultPhase) jetstream.Msg {
	t.Helper()
	var found jetstream.Msg
	waitFor(t, "a stored "+phase.String()+" result of "+run, func() bool {
		for _, m := range bustest.Stored(t, env.JS, env.Config.Names.ResultsStream(), env.Config.Names.RunResults(run)) {
			var r sluicev1.Result
			if proto.Unmarshal(m.Data(), &r) == nil && r.GetPhase() == phase {
				found = m
				return true
			}
		}
		return false
	})
	return found
}

const failingGate = `version: 1
name: web
stages:
  check: {kind: static, run: ["sleep 4; echo the real check fails; exit 1"]}
  deploy: {kind: static, needs: [check], run: ["true"]}
`

// TestForgedResultsNeverOpenTheGate publishes a FINAL PASSED for a stage whose step is still
// running (and will fail) with every role's credentials, under every trick: no proof, a
// made-up proof, another run's subject, a replayed genuine result. The run must fail as its
// real step does, the dependent deploy must never run, and every forgery must be counted.
func TestForgedResultsNeverOpenTheGate(t *testing.T) {
	s := bustest.StartSecured(t, bus.Config{})
	s.AddUser(t, auth.WorkerRole(static), "other")
	coord := startSecuredCoordinator(t, s)
	startSecuredWorker(t, s, static, auth.DefaultUser)
	submitter := clientAs(t, s, auth.RoleSubmitter, auth.DefaultUser)

	// A genuine run whose results an attacker replays.
	old := submitYAML(t, submitter, "feature", "version: 1\nname: web\nstages:\n  check: {kind: static, run: [\"true\"]}\n")
	waitRun(t, &s.Env, old.GetId(), sluicev1.RunStatus_RUN_STATUS_PASSED)
	genuine := storedResult(t, &s.Env, old.GetId(), sluicev1.ResultPhase_RESULT_PHASE_FINAL)

	st := submitYAML(t, submitter, "feature", failingGate)
	waitStage(t, &s.Env, st.GetId(), "check", sluicev1.StageStatus_STAGE_STATUS_RUNNING)
	forgedPass := func(run string) []byte {
		data, _ := proto.Marshal(&sluicev1.Result{RunId: run, Stage: "check", Attempt: 1, Phase: sluicev1.ResultPhase_RESULT_PHASE_FINAL,
			Outcome: sluicev1.Outcome_OUTCOME_PASSED, Message: "looks good to me", Worker: "attacker", Delivery: 1})
		return data
	}
	randomLease := make([]byte, 32)
	_, _ = rand.Read(randomLease)

	type forgery struct {
		name    string
		role    auth.Role
		user    string
		subject func(id bus.Identity) string
		data    []byte
		proof   string
	}
	forgeries := []forgery{
		{name: "no proof, a worker of the same kind that does not hold the task", role: auth.WorkerRole(static), user: "other",
			subject: func(id bus.Identity) string { return s.Config.Names.Result(st.GetId(), id) }, data: forgedPass(st.GetId())},
		{name: "a made-up proof", role: auth.WorkerRole(static), user: "other",
			subject: func(id bus.Identity) string { return s.Config.Names.Result(st.GetId(), id) }, data: forgedPass(st.GetId()),
			proof: bus.Prove(randomLease, forgedPass(st.GetId()))},
		{name: "another run's subject naming the target run", role: auth.WorkerRole(static), user: "other",
			subject: func(id bus.Identity) string { return s.Config.Names.Result(old.GetId(), id) }, data: forgedPass(st.GetId())},
		{name: "a genuine result of another run, replayed as it was", role: auth.WorkerRole(static), user: "other",
			subject: func(id bus.Identity) string { return s.Config.Names.Result(st.GetId(), id) }, data: genuine.Data(),
			proof: genuine.Headers().Get(bus.HeaderProof)},
		{name: "a genuine result of another run, rewritten to the target with its proof", role: auth.WorkerRole(static), user: "other",
			subject: func(id bus.Identity) string { return s.Config.Names.Result(st.GetId(), id) },
			data:    bytes.Replace(genuine.Data(), []byte(old.GetId()), []byte(st.GetId()), 1), proof: genuine.Headers().Get(bus.HeaderProof)},
	}
	for _, k := range sluicev1.AllKinds() {
		forgeries = append(forgeries, forgery{name: "no proof from worker-" + k.Slug(), role: auth.WorkerRole(k), user: auth.DefaultUser,
			subject: func(id bus.Identity) string { return s.Config.Names.Result(st.GetId(), id) }, data: forgedPass(st.GetId())})
	}
	// The same-kind worker cannot take the task from its holder, nor read the holder's inbox.
	otherNC, otherJS := s.Connect(t, auth.WorkerRole(static), "other")
	cons, err := otherJS.Consumer(t.Context(), s.Config.Names.TasksStream(), s.Config.Names.WorkerConsumer("static", "default"))
	if err != nil {
		t.Fatal(err)
	}
	if batch, err := cons.FetchNoWait(1); err == nil {
		for m := range batch.Messages() {
			t.Fatalf("worker-static:other pulled a task held by another worker: %s", m.Subject())
		}
	}
	holder, _ := bus.ReadIdentity(s.Layout.Creds(auth.WorkerRole(static), auth.DefaultUser))
	_, _ = otherNC.SubscribeSync(bus.InboxPrefix(holder.User) + ".>")
	if err := otherNC.Flush(); err != nil || !errors.Is(otherNC.LastError(), nats.ErrPermissionViolation) {
		t.Fatalf("worker-static:other subscribed to the holder's inbox (flush %v, last error %v)", err, otherNC.LastError())
	}

	var forged, mismatched int64
	for _, f := range forgeries {
		nc, js := s.Connect(t, f.role, f.user)
		id := bus.IdentityOf(nc)
		msg := nats.NewMsg(f.subject(id))
		msg.Data = f.data
		msg.Header.Set(nats.MsgIdHdr, fmt.Sprintf("forgery-%d", time.Now().UnixNano()))
		if f.proof != "" {
			msg.Header.Set(bus.HeaderProof, f.proof)
		}
		if _, err := js.PublishMsg(t.Context(), msg); err != nil {
			t.Fatalf("%s: the result subject refused the publish (%v); the forgery must reach the coordinator to test it", f.name, err)
		}
		if strings.Contains(f.name, "subject") || strings.Contains(f.name, "as it was") {
			mismatched++
		} else {
			forged++
		}
	}
	// Roles that do not run tasks may not publish results at all.
	for _, r := range []auth.Role{auth.RoleSubmitter, auth.RoleApprover, auth.RoleObserver, auth.RoleCoordinator} {
		nc, _ := s.Connect(t, r, auth.DefaultUser)
		_ = nc.Publish(s.Config.Names.Result(st.GetId(), bus.IdentityOf(nc)), forgedPass(st.GetId()))
		if err := nc.Flush(); err != nil || !errors.Is(nc.LastError(), nats.ErrPermissionViolation) {
			t.Errorf("%s published a result: the server must refuse it (flush %v, last error %v)", r, err, nc.LastError())
		}
	}
	final := waitRun(t, &s.Env, st.GetId(), sluicev1.RunStatus_RUN_STATUS_FAILED)
	check, deploy := final.GetStages()[0], final.GetStages()[1]
	if check.GetStatus() != sluicev1.StageStatus_STAGE_STATUS_FAILED || !strings.Contains(check.GetMessage(), "exited 1") {
		t.Fatalf("check %s (%s): it must fail as its real step does", check.GetStatus().Short(), check.GetMessage())
	}
	if deploy.GetStatus() != sluicev1.StageStatus_STAGE_STATUS_SKIPPED {
		t.Fatalf("deploy %s: the gate opened", deploy.GetStatus().Short())
	}
	if w := check.GetShards()[0].GetWorker(); w != auth.DefaultUser {
		t.Fatalf("the check's result came from %q, not the worker that held it", w)
	}
	waitFor(t, "every forgery counted", func() bool {
		got := coord.Stats()
		return got.Forged >= forged && got.Mismatched >= mismatched
	})
	if got := coord.Stats(); got.Forged != forged || got.Mismatched != mismatched {
		t.Fatalf("counted %d forged and %d mismatched, want %d and %d", got.Forged, got.Mismatched, forged, mismatched)
	}
}

const approvalGate = `version: 1
name: web
stages:
  build: {kind: static, run: ["true"]}
  release:
    kind: static
    needs: [build]
    approval: {required: true, by: [approver:alice]}
    run: ["true"]
`

// TestApprovalIsTheAuthenticatedPrincipals: only a principal the stage names may approve it,
// the run records who did, and a message the server publishes onto the approver's subject
// (through a JetStream read aimed there) speaks for nobody.
func TestApprovalIsTheAuthenticatedPrincipals(t *testing.T) {
	s := bustest.StartSecured(t, bus.Config{})
	s.AddUser(t, auth.RoleApprover, "alice")
	startSecuredCoordinator(t, s)
	startSecuredWorker(t, s, static, auth.DefaultUser)
	submitter := clientAs(t, s, auth.RoleSubmitter, auth.DefaultUser)
	st := submitYAML(t, submitter, "feature", approvalGate)
	waitStage(t, &s.Env, st.GetId(), "release", sluicev1.StageStatus_STAGE_STATUS_WAITING_APPROVAL)

	_, err := clientAs(t, s, auth.RoleApprover, auth.DefaultUser).Approve(t.Context(), st.GetId(), "release")
	if !errors.Is(err, ErrForbidden) || !strings.Contains(err.Error(), "approver:alice") {
		t.Fatalf("approval by approver:default: %v, want forbidden naming who may", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	if _, err := submitter.Approve(ctx, st.GetId(), "release"); err == nil {
		t.Fatal("a submitter approved a stage")
	}

	// The deputy: a submitter stores bytes that decode as alice's approval in a stream it
	// may write (as an object's metadata), then asks the server to deliver that message onto
	// alice's approve subject as the reply to a read it may make.
	forged, _ := proto.Marshal(&sluicev1.ApproveStageRequest{Id: st.GetId(), Stage: "release"})
	subNC, subJS := s.Connect(t, auth.RoleSubmitter, auth.DefaultUser)
	bucket := s.Config.Names.SourcesStore()
	meta := "$O." + bucket + ".M.deputy"
	if _, err := subJS.Publish(t.Context(), meta, forged); err != nil {
		t.Fatalf("the submitter may write object metadata: %v", err)
	}
	alice := s.Config.Names.API("approve", bus.Identity{Role: "approver", Name: "alice"})
	if err := subNC.PublishRequest("$JS.API.DIRECT.GET."+bus.ObjectStream(bucket)+"."+meta, alice, nil); err != nil {
		t.Fatal(err)
	}
	if err := subNC.Flush(); err != nil || subNC.LastError() != nil {
		t.Fatalf("the read was refused (flush %v, %v): the deputy must reach the coordinator to test it", err, subNC.LastError())
	}
	time.Sleep(500 * time.Millisecond)
	if got, err := NewClient(s.NC, s.Config.Names).Get(t.Context(), st.GetId()); err != nil || got.GetStages()[1].GetApprovedBy() != "" {
		t.Fatalf("the server-delivered message approved the stage as %q (err %v)", got.GetStages()[1].GetApprovedBy(), err)
	}

	if _, err := clientAs(t, s, auth.RoleApprover, "alice").Approve(t.Context(), st.GetId(), "release"); err != nil {
		t.Fatalf("alice's approval: %v", err)
	}
	final := waitRun(t, &s.Env, st.GetId(), sluicev1.RunStatus_RUN_STATUS_PASSED)
	if got := final.GetStages()[1].GetApprovedBy(); got != "approver:alice" {
		t.Fatalf("approved by %q, want approver:alice", got)
	}
	for _, ev := range runEvents(t, &s.Env, st.GetId()) {
		if ev.GetType() == "stage.approved" && ev.GetDetail()["by"] != "approver:alice" {
			t.Fatalf("stage.approved event names %q", ev.GetDetail()["by"])
		}
	}
	if final.GetSubmittedBy() != "submitter:default" {
		t.Fatalf("submitted by %q", final.GetSubmittedBy())
	}
}

// TestProtectedRefs: only the principals the policy names may submit runs for main.
func TestProtectedRefs(t *testing.T) {
	s := bustest.StartSecured(t, bus.Config{})
	s.AddUser(t, auth.RoleSubmitter, "dev")
	startSecuredCoordinator(t, s)
	spec := "version: 1\nname: web\nstages:\n  deploy: {kind: static, when: {branch: main}, run: [\"true\"]}\n"
	dev := clientAs(t, s, auth.RoleSubmitter, "dev")
	_, err := dev.Submit(t.Context(), &sluicev1.SubmitRunRequest{SpecYaml: spec, Ref: "main"})
	if !errors.Is(err, ErrForbidden) || !strings.Contains(err.Error(), "protected") || !strings.Contains(err.Error(), "submitter:dev") {
		t.Fatalf("submitter:dev submitting main: %v, want forbidden", err)
	}
	if st := submitYAML(t, dev, "feature/x", spec); st.GetRefProtected() {
		t.Fatal("a feature branch is not protected")
	}
	st := submitYAML(t, clientAs(t, s, auth.RoleSubmitter, auth.DefaultUser), "main", spec)
	if !st.GetRefProtected() || st.GetSubmittedBy() != "submitter:default" {
		t.Fatalf("main by the CI submitter: protected %v, submitted by %q", st.GetRefProtected(), st.GetSubmittedBy())
	}
}

// TestProtobufSpecsAreHeldToTheLintRules submits specs over NATS as protobuf, skipping the
// YAML parser, and expects each limit `sluice lint` enforces.
func TestProtobufSpecsAreHeldToTheLintRules(t *testing.T) {
	env := bustest.Start(t, bus.Config{})
	startCoordinator(t, env)
	client := NewClient(env.NC, env.Config.Names)
	long := strings.Repeat("x", 200_000)
	tests := []struct {
		name   string
		stages []*sluicev1.StageSpec
		want   string
	}{
		{"shards", []*sluicev1.StageSpec{{Name: "a", Kind: static, Run: []string{"true"}, Shards: 100000}}, "stages.a.shards: 100000 is out of range"},
		{"retries", []*sluicev1.StageSpec{{Name: "a", Kind: static, Run: []string{"true"}, Retries: 1000000}}, "stages.a.retries: 1000000 is out of range"},
		{"wildcard pool", []*sluicev1.StageSpec{{Name: "a", Kind: static, Run: []string{"true"}, Pool: "*"}}, `stages.a.pool: invalid pool "*"`},
		{"state larger than the server allows", []*sluicev1.StageSpec{{Name: "a", Kind: static, Run: []string{long, long}}}, "the run's state would be"},
		{"5,000 stages", func() []*sluicev1.StageSpec {
			var many []*sluicev1.StageSpec
			for i := range 5000 {
				many = append(many, &sluicev1.StageSpec{Name: fmt.Sprintf("s%d", i), Kind: static, Run: []string{"true"}})
			}
			return many
		}(), "5000 stages, the limit is 1000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := client.Submit(t.Context(), &sluicev1.SubmitRunRequest{Spec: &sluicev1.PipelineSpec{Version: 1, Name: "web", Stages: tt.stages}})
			if !errors.Is(err, ErrBadRequest) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("submit: %v, want a bad request saying %q", err, tt.want)
			}
		})
	}
	if runs := client.mustList(t); len(runs) != 0 {
		t.Fatalf("%d runs were created from refused specs", len(runs))
	}
}

func (c *Client) mustList(t *testing.T) []*sluicev1.RunSummary {
	t.Helper()
	runs, err := c.List(t.Context(), &sluicev1.ListRunsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	return runs
}

// TestHTTPAPIOnTheSamePrincipals: tokens per role, the role's verbs only, the principal
// recorded, and the HTTP answers a client expects for what cannot be done.
func TestHTTPAPIOnTheSamePrincipals(t *testing.T) {
	s := bustest.StartSecured(t, bus.Config{})
	c := startSecuredCoordinator(t, s)
	startSecuredWorker(t, s, static, auth.DefaultUser)
	srv := httptest.NewServer(c.Handler())
	defer srv.Close()
	token := func(r auth.Role) string {
		data, err := os.ReadFile(s.Layout.Token(r, auth.DefaultUser))
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(data))
	}
	do := func(method, path, tok string, body io.Reader) *http.Response {
		req, _ := http.NewRequest(method, srv.URL+path, body)
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}
	spec := func() io.Reader {
		return strings.NewReader(`{"specYaml":"version: 1\nname: web\nstages:\n  a: {kind: static, run: [\"true\"]}\n  gate: {kind: static, needs: [a], approval: required, run: [\"true\"]}\n","ref":"feature"}`)
	}
	tests := []struct {
		name, method, path, token string
		want                      int
	}{
		{"list without a token", "GET", "/api/v1/runs", "", http.StatusUnauthorized},
		{"list with a forged token", "GET", "/api/v1/runs", "sluice1.eyJyb2xlIjoiYWRtaW4iLCJuYW1lIjoieCJ9.AAAA", http.StatusUnauthorized},
		{"list as an observer", "GET", "/api/v1/runs", token(auth.RoleObserver), http.StatusOK},
		{"list as a worker", "GET", "/api/v1/runs", token(auth.WorkerRole(static)), http.StatusForbidden},
		{"submit without a token", "POST", "/api/v1/runs", "", http.StatusUnauthorized},
		{"submit as an observer", "POST", "/api/v1/runs", token(auth.RoleObserver), http.StatusForbidden},
		{"submit as an approver", "POST", "/api/v1/runs", token(auth.RoleApprover), http.StatusForbidden},
		// The dashboard's rollout and retry buttons: the role's verbs, whatever the page shows.
		{"retry without a token", "POST", "/api/v1/runs/r1/stages/a/retry", "", http.StatusUnauthorized},
		{"retry as an observer", "POST", "/api/v1/runs/r1/stages/a/retry", token(auth.RoleObserver), http.StatusForbidden},
		{"retry as a worker", "POST", "/api/v1/runs/r1/stages/a/retry", token(auth.WorkerRole(static)), http.StatusForbidden},
		{"pause a rollout as a submitter", "POST", "/api/v1/runs/r1/rollout/pause", token(auth.RoleSubmitter), http.StatusForbidden},
		{"promote a rollout as an observer", "POST", "/api/v1/runs/r1/rollout/promote", token(auth.RoleObserver), http.StatusForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if resp := do(tt.method, tt.path, tt.token, spec()); resp.StatusCode != tt.want {
				body, _ := io.ReadAll(resp.Body)
				t.Fatalf("%s %s: %d (%s), want %d", tt.method, tt.path, resp.StatusCode, body, tt.want)
			}
		})
	}
	resp := do("POST", "/api/v1/runs", token(auth.RoleSubmitter), spec())
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("submit as the submitter: %d %s", resp.StatusCode, body)
	}
	var sub struct {
		Run struct{ Id, SubmittedBy string } `json:"run"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&sub); err != nil {
		t.Fatal(err)
	}
	if sub.Run.SubmittedBy != "submitter:default" {
		t.Fatalf("submitted by %q", sub.Run.SubmittedBy)
	}
	id := sub.Run.Id
	approve := "/api/v1/runs/" + id + "/stages/gate/approve"
	if resp := do("POST", "/api/v1/runs/"+id+"/stages/a/approve", token(auth.RoleApprover), nil); resp.StatusCode != http.StatusConflict {
		t.Fatalf("approving a stage without approval: %d, want 409", resp.StatusCode)
	}
	if resp := do("POST", "/api/v1/runs/"+id+"/stages/nope/approve", token(auth.RoleApprover), nil); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("approving an unknown stage: %d, want 404", resp.StatusCode)
	}
	waitStage(t, &s.Env, id, "gate", sluicev1.StageStatus_STAGE_STATUS_WAITING_APPROVAL)
	if resp := do("POST", approve, token(auth.RoleSubmitter), nil); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("approving as the submitter: %d, want 403", resp.StatusCode)
	}
	if resp := do("POST", approve, token(auth.RoleApprover), nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("approving as the approver: %d", resp.StatusCode)
	}
	if resp := do("POST", approve, token(auth.RoleApprover), nil); resp.StatusCode != http.StatusConflict {
		t.Fatalf("approving again: %d, want 409", resp.StatusCode)
	}
	final := waitRun(t, &s.Env, id, sluicev1.RunStatus_RUN_STATUS_PASSED)
	if got := final.GetStages()[1].GetApprovedBy(); got != "approver:default" {
		t.Fatalf("approved by %q", got)
	}
	huge := bytes.NewReader(bytes.Repeat([]byte(" "), maxRequestBytes+1))
	if resp := do("POST", "/api/v1/runs", token(auth.RoleSubmitter), huge); resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("a body over the limit: %d, want 413", resp.StatusCode)
	}
}

// TestRolloutLeavesSignedEvidence: a promotion stores an in-toto statement signed with the
// fleet's key, naming the run, the commit, the stages and every verdict's numbers; one
// changed byte and it no longer verifies. The run.passed event is signed too.
func TestRolloutLeavesSignedEvidence(t *testing.T) {
	s := bustest.StartSecured(t, bus.Config{})
	startSecuredCoordinator(t, s)
	ts := sluicev1.StageKind_STAGE_KIND_TRAFFIC_SHIFT
	_, js := s.Connect(t, auth.WorkerRole(ts), auth.DefaultUser)
	startWorkerAs(t, &s.Env, js, bus.Identity{Role: string(auth.WorkerRole(ts)), Name: auth.DefaultUser}, ts, func(task *sluicev1.Task) *sluicev1.Result {
		r := &sluicev1.Result{Outcome: sluicev1.Outcome_OUTCOME_PASSED, Worker: "ts"}
		if task.GetRollout().GetAction() == sluicev1.RolloutAction_ROLLOUT_ACTION_ANALYSE {
			r.Verdict = healthy()
			r.Verdict.Metrics = []*sluicev1.MetricVerdict{{Name: "error_rate", Outcome: sluicev1.VerdictOutcome_VERDICT_OUTCOME_HEALTHY,
				Canary: 0.001, Baseline: 0.002, Limit: 0.003, Rule: "max_ratio_to_baseline", CanarySamples: 400, BaselineSamples: 3600}}
		}
		return r
	})
	submitter := clientAs(t, s, auth.RoleSubmitter, auth.DefaultUser)
	spec := &sluicev1.PipelineSpec{Version: 1, Name: "web", Stages: []*sluicev1.StageSpec{rolloutStage()}}
	st, err := submitter.Submit(t.Context(), &sluicev1.SubmitRunRequest{Spec: spec, Ref: "main", Commit: "0123456789abcdef0123456789abcdef01234567"})
	if err != nil {
		t.Fatal(err)
	}
	final := waitRun(t, &s.Env, st.GetId(), sluicev1.RunStatus_RUN_STATUS_PASSED)
	var ref *sluicev1.ArtifactRef
	for _, a := range final.GetStages()[0].GetArtifacts() {
		if a.GetName() == EvidenceArtifact {
			ref = a
		}
	}
	if ref == nil {
		t.Fatalf("no %s among the artifacts %v", EvidenceArtifact, final.GetStages()[0].GetArtifacts())
	}
	store, _ := s.JS.ObjectStore(t.Context(), s.Config.Names.ArtifactsStore())
	data, err := store.GetBytes(t.Context(), ref.GetObject())
	if err != nil {
		t.Fatal(err)
	}
	pub, err := s.Fleet(t).Trust.EvidencePublicKey()
	if err != nil {
		t.Fatal(err)
	}
	stmt, err := evidence.Verify(data, pub)
	if err != nil {
		t.Fatalf("the evidence does not verify: %v", err)
	}
	g := stmt.Predicate
	if g.Run != st.GetId() || g.Decision != "promoted" || g.Commit != "0123456789abcdef0123456789abcdef01234567" || g.SubmittedBy != "submitter:default" || !g.RefProtected {
		t.Fatalf("evidence %+v", g)
	}
	if len(g.Verdicts) == 0 || len(g.Verdicts[0].Metrics) == 0 || g.Verdicts[0].Metrics[0].Limit == 0 {
		t.Fatalf("the evidence lacks the verdicts' numbers: %+v", g.Verdicts)
	}
	if len(g.Stages) != 1 || g.Stages[0].Status != "passed" {
		t.Fatalf("stages %+v", g.Stages)
	}
	i := bytes.Index(data, []byte(`"payload": "`)) + len(`"payload": "`) + 10
	tampered := bytes.Clone(data)
	tampered[i] ^= 0x01
	if _, err := evidence.Verify(tampered, pub); !errors.Is(err, evidence.ErrInvalid) {
		t.Fatalf("tampered evidence: %v, want ErrInvalid", err)
	}
	for _, m := range bustest.Stored(t, s.JS, s.Config.Names.EventsStream(), s.Config.Names.Event("web", st.GetId(), "run.passed")) {
		if !VerifyEvent(pub, m.Data(), m.Headers().Get(HeaderSignature)) {
			t.Fatal("the run.passed event carries no valid signature")
		}
		if VerifyEvent(pub, append(bytes.Clone(m.Data()), 0), m.Headers().Get(HeaderSignature)) {
			t.Fatal("the event signature does not cover its payload")
		}
	}
}

// TestArtifactsAreDownloadsOfTheRunsOwnResults: an HTML artifact is served as an attachment
// that the browser may not sniff or run; a result naming another run's object gets nothing;
// an object replaced after its stage ended is refused.
func TestArtifactsAreDownloadsOfTheRunsOwnResults(t *testing.T) {
	env := bustest.Start(t, bus.Config{})
	c, _ := startCoordinator(t, env)
	store, err := env.JS.ObjectStore(t.Context(), env.Config.Names.ArtifactsStore())
	if err != nil {
		t.Fatal(err)
	}
	put := func(name, body string) *sluicev1.ArtifactRef {
		info, err := store.PutBytes(t.Context(), name, []byte(body))
		if err != nil {
			t.Fatal(err)
		}
		return &sluicev1.ArtifactRef{Name: path.Base(name), Object: name, ContentType: "text/html", Size: int64(info.Size), Digest: bus.ObjectDigest(info.Digest)}
	}
	var victim *sluicev1.ArtifactRef
	startWorker(t, env, func(task *sluicev1.Task) *sluicev1.Result {
		r := pass(task)
		r.Artifacts = []*sluicev1.ArtifactRef{
			put(task.GetRunId()+"/a/1.0.1/xss.html", "<script>alert(document.cookie)</script>"),
			put(task.GetRunId()+"/a/1.0.1/later.html", "original"),
		}
		if victim != nil {
			r.Artifacts = append(r.Artifacts, victim)
		}
		return r
	})
	other := submit(t, env, "main", stage("a"))
	waitRun(t, env, other.GetId(), sluicev1.RunStatus_RUN_STATUS_PASSED)
	victim = &sluicev1.ArtifactRef{Name: "stolen.html", Object: other.GetId() + "/a/1.0.1/xss.html"}
	st := submit(t, env, "main", stage("a"))
	waitRun(t, env, st.GetId(), sluicev1.RunStatus_RUN_STATUS_PASSED)
	put(st.GetId()+"/a/1.0.1/later.html", "replaced after the stage")

	srv := httptest.NewServer(c.Handler())
	defer srv.Close()
	get := func(name string) *http.Response {
		resp, err := http.Get(srv.URL + "/api/v1/runs/" + st.GetId() + "/artifacts/a/" + name)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}
	resp := get("xss.html")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET the artifact: %d", resp.StatusCode)
	}
	for header, want := range map[string]string{
		"Content-Disposition": `attachment; filename=xss.html`, "X-Content-Type-Options": "nosniff",
		"Content-Type": "application/octet-stream", "Content-Security-Policy": "sandbox; default-src 'none'",
	} {
		if got := resp.Header.Get(header); got != want {
			t.Errorf("%s: %q, want %q", header, got, want)
		}
	}
	if resp := get("stolen.html"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("an artifact of another run: %d, want 404", resp.StatusCode)
	}
	if resp := get("later.html"); resp.StatusCode != http.StatusConflict {
		t.Errorf("an artifact replaced after its stage: %d, want 409", resp.StatusCode)
	}
}

// Acting on a rollout is approving it: only a principal its stage names (approval.by) may
// pause, resume, promote or abort it, and a role without the verb is refused by the server.
func TestRolloutActionsAreTheStagesApprovers(t *testing.T) {
	s := bustest.StartSecured(t, bus.Config{})
	s.AddUser(t, auth.RoleApprover, "alice")
	startSecuredCoordinator(t, s)
	ts := sluicev1.StageKind_STAGE_KIND_TRAFFIC_SHIFT
	tsNC, tsJS := s.Connect(t, auth.WorkerRole(ts), auth.DefaultUser)
	startWorkerAs(t, &s.Env, tsJS, bus.IdentityOf(tsNC), ts, func(task *sluicev1.Task) *sluicev1.Result {
		if task.GetRollout().GetAction() == sluicev1.RolloutAction_ROLLOUT_ACTION_ANALYSE {
			return nil // held: the rollout stays in progress
		}
		return &sluicev1.Result{Outcome: sluicev1.Outcome_OUTCOME_PASSED, Worker: "ts"}
	})
	production := rolloutStage()
	production.ApprovalBy = []string{"approver:alice"}
	production.Approval = "required"
	st, err := clientAs(t, s, auth.RoleSubmitter, auth.DefaultUser).Submit(t.Context(), &sluicev1.SubmitRunRequest{
		Spec: &sluicev1.PipelineSpec{Version: 1, Name: "web", Stages: []*sluicev1.StageSpec{production}}, Ref: "feature",
	})
	if err != nil {
		t.Fatal(err)
	}
	waitStage(t, &s.Env, st.GetId(), "production", sluicev1.StageStatus_STAGE_STATUS_WAITING_APPROVAL)
	if _, err := clientAs(t, s, auth.RoleApprover, "alice").Approve(t.Context(), st.GetId(), "production"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the rollout to analyse its first step", func() bool {
		got, err := NewClient(s.NC, s.Config.Names).Get(t.Context(), st.GetId())
		return err == nil && got.GetStages()[0].GetRollout().GetPhase() == sluicev1.RolloutPhase_ROLLOUT_PHASE_ANALYSING
	})

	_, err = clientAs(t, s, auth.RoleApprover, auth.DefaultUser).Rollout(t.Context(), st.GetId(), "", decide.RolloutPause, "")
	if !errors.Is(err, ErrForbidden) || !strings.Contains(err.Error(), "approver:alice") {
		t.Fatalf("pause by approver:default: %v, want forbidden naming who may", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	if _, err := clientAs(t, s, auth.RoleSubmitter, auth.DefaultUser).Rollout(ctx, st.GetId(), "", decide.RolloutAbort, ""); err == nil {
		t.Fatal("a submitter aborted a rollout")
	}
	got, err := clientAs(t, s, auth.RoleApprover, "alice").Rollout(t.Context(), st.GetId(), "production", decide.RolloutPause, "")
	if err != nil {
		t.Fatalf("pause by alice: %v", err)
	}
	if ro := got.GetStages()[0].GetRollout(); !ro.GetHeld() || ro.GetHeldBy() != "approver:alice" {
		t.Fatalf("after alice's pause: rollout %v", ro)
	}
}
