package systemtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	dockernet "github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/network"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-ci/sluice/coordinator"
	"github.com/sluice-ci/sluice/internal/auth"
	"github.com/sluice-ci/sluice/internal/bus"
	"github.com/sluice-ci/sluice/internal/bus/bustest"
	sluicev1 "github.com/sluice-ci/sluice/proto/sluice/v1"
)

// The images `make images` builds from this checkout (make test builds them first).
var fleetImages = []string{"sluice/nats:latest", "sluice/sluice:latest", "sluice/worker:latest"}

// containerStepUIDs are the step users of the workers in containers. Containers share the
// host's kernel and uids: a worker on the host (the process tiers run beside this one) sweeps
// every process of its step uids after a task, so the ranges must not overlap.
const containerStepUIDs = "300000+256"

// fleetAckWait is short so that a killed or cut-off worker's task comes back soon.
const fleetAckWait = 3 * time.Second

// dockerFleet is a fleet in containers on a network of its own, as compose.yaml lays it out:
// a 3-node NATS cluster (R3, fsync on every write) with the configuration `sluice auth init
// --cluster` writes, coordinators and static workers, each with only its own credentials.
type dockerFleet struct {
	t      *testing.T
	docker *testcontainers.DockerClient
	net    *testcontainers.DockerNetwork
	auth   auth.Layout
	urls   string // the NATS nodes as the containers reach them
	ctrs   map[string]*testcontainers.DockerContainer
	client *coordinator.Client
	js     jetstream.JetStream // admin: reads the streams for the checker

	mu        sync.Mutex
	submitted []string
}

// requireDocker returns a client of the Docker engine with the fleet's images, or skips the
// test; under CI=true a missing engine or image fails it instead.
func requireDocker(t *testing.T) *testcontainers.DockerClient {
	t.Helper()
	missing := func(format string, args ...any) {
		msg := fmt.Sprintf(format, args...)
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s (CI=true: the container tier must run)", msg)
		}
		t.Skip(msg)
	}
	cli, err := testcontainers.NewDockerClientWithOpts(t.Context())
	if err == nil {
		_, err = cli.Ping(t.Context(), client.PingOptions{})
	}
	if err != nil {
		missing("no Docker engine answers: %v", err)
	}
	for _, img := range fleetImages {
		if _, err := cli.ImageInspect(t.Context(), img); err != nil {
			missing("image %s is missing: run make images", img)
		}
	}
	return cli
}

func startDockerFleet(t *testing.T) *dockerFleet {
	t.Helper()
	ctx := t.Context()
	f := &dockerFleet{t: t, docker: requireDocker(t), ctrs: map[string]*testcontainers.DockerContainer{}}
	dir := filepath.Join(t.TempDir(), "auth")
	hosts := []string{"nats-1", "nats-2", "nats-3"}
	if _, err := auth.Init(dir, auth.InitOptions{Cluster: hosts, SyncAlways: true}); err != nil {
		t.Fatal(err)
	}
	f.auth = auth.Layout{Dir: dir}
	var err error
	if f.net, err = network.New(ctx); err != nil {
		t.Fatalf("docker network: %v", err)
	}
	testcontainers.CleanupNetwork(t, f.net)

	var hostURLs, urls []string
	for _, h := range hosts {
		port := freePort(t)
		hostURLs = append(hostURLs, fmt.Sprintf("nats://127.0.0.1:%d", port))
		urls = append(urls, fmt.Sprintf("nats://%s:%d", h, auth.ClientPort))
		f.run(h, "sluice/nats:latest", []string{"-c", "/etc/nats/cluster/" + h + ".conf"},
			testcontainers.WithFiles(
				testcontainers.ContainerFile{HostFilePath: f.auth.ClusterConfig(h), ContainerFilePath: "/etc/nats/cluster/" + h + ".conf", FileMode: 0o600},
				testcontainers.ContainerFile{HostFilePath: filepath.Join(dir, "auth.conf"), ContainerFilePath: "/etc/nats/auth.conf", FileMode: 0o600},
			),
			// A fixed host port: it stays the same when the node restarts.
			testcontainers.WithConfigModifier(func(c *container.Config) {
				c.ExposedPorts = dockernet.PortSet{dockernet.MustParsePort("4222/tcp"): {}}
			}),
			testcontainers.WithHostConfigModifier(func(hc *container.HostConfig) {
				hc.PortBindings = dockernet.PortMap{dockernet.MustParsePort("4222/tcp"): {{HostIP: netip.MustParseAddr("127.0.0.1"), HostPort: strconv.Itoa(port)}}}
			}))
	}
	f.urls = strings.Join(urls, ",")
	f.waitNATS(hosts...)

	submitter, err := bus.Connect(ctx, bus.ConnectOptions{URL: strings.Join(hostURLs, ","), CredsFile: f.auth.Creds(auth.RoleSubmitter, auth.DefaultUser)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(submitter.Close)
	f.client = coordinator.NewClient(submitter, bus.Names{Prefix: bus.DefaultPrefix})
	admin, err := bus.Connect(ctx, bus.ConnectOptions{URL: strings.Join(hostURLs, ","), CredsFile: f.auth.Creds(auth.RoleAdmin, auth.DefaultUser)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(admin.Close)
	if f.js, err = jetstream.New(admin); err != nil {
		t.Fatal(err)
	}
	return f
}

// run starts a container on the fleet's network, reachable there as name.
func (f *dockerFleet) run(name, image string, cmd []string, opts ...testcontainers.ContainerCustomizer) {
	f.t.Helper()
	opts = append([]testcontainers.ContainerCustomizer{
		network.WithNetwork([]string{name}, f.net),
		testcontainers.WithCmd(cmd...),
		testcontainers.WithConfigModifier(func(c *container.Config) { c.Hostname = name }),
	}, opts...)
	ctr, err := testcontainers.Run(f.t.Context(), image, opts...)
	testcontainers.CleanupContainer(f.t, ctr)
	if err != nil {
		f.t.Fatalf("start %s (%s): %v", name, image, err)
	}
	f.ctrs[name] = ctr
	f.t.Cleanup(func() {
		if f.t.Failed() {
			f.t.Logf("--- last output of %s:\n%s", name, f.logs(name, 40))
		}
	})
}

func (f *dockerFleet) logs(name string, lines int) string {
	rc, err := f.ctrs[name].Logs(context.Background())
	if err != nil {
		return err.Error()
	}
	defer rc.Close()
	data, _ := io.ReadAll(rc)
	all := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	return strings.Join(all[max(0, len(all)-lines):], "\n")
}

// files mounts auth files into a container at the same place under /etc/sluice/auth.
func (f *dockerFleet) files(paths ...string) testcontainers.CustomizeRequestOption {
	var files []testcontainers.ContainerFile
	for _, p := range paths {
		rel, err := filepath.Rel(f.auth.Dir, p)
		if err != nil {
			f.t.Fatal(err)
		}
		files = append(files, testcontainers.ContainerFile{HostFilePath: p, ContainerFilePath: "/etc/sluice/auth/" + rel, FileMode: 0o600})
	}
	return testcontainers.WithFiles(files...)
}

func (f *dockerFleet) coordinator(name string) {
	f.t.Helper()
	l := f.auth
	f.run(name, "sluice/sluice:latest", []string{"coordinator", "--id", name, "--nats", f.urls, "--auth", "/etc/sluice/auth", "--replicas", "3", "--http", ""},
		f.files(l.Creds(auth.RoleCoordinator, auth.DefaultUser), l.Trust(), l.Policy(), l.EvidenceKey()))
	f.waitAPI()
}

func (f *dockerFleet) worker(name string) {
	f.t.Helper()
	creds := f.auth.Creds(auth.WorkerRole(sluicev1.StageKind_STAGE_KIND_STATIC), auth.DefaultUser)
	f.run(name, "sluice/worker:latest", []string{"worker", "--id", name, "--kinds", "static", "--concurrency", "4", "--ack-wait", fleetAckWait.String(),
		"--grace", "1s", "--step-uids", containerStepUIDs, "--nats", f.urls, "--creds", "/etc/sluice/auth/creds/worker-static.creds"},
		f.files(creds),
		// Steps run as users of their own in a PID namespace: root in the container and
		// CAP_SYS_ADMIN, as in compose.yaml.
		testcontainers.WithHostConfigModifier(func(hc *container.HostConfig) { hc.CapAdd = []string{"SYS_ADMIN"} }))
}

// waitNATS waits until each node's monitoring port says it is healthy (JetStream current).
func (f *dockerFleet) waitNATS(hosts ...string) {
	f.t.Helper()
	for _, h := range hosts {
		waitFor(f.t, h+" to be healthy", 60*time.Second, func() bool {
			code, _, err := f.ctrs[h].Exec(f.t.Context(), []string{"/sluice", "healthcheck", "--timeout", "1s", "http://127.0.0.1:8222/healthz"})
			return err == nil && code == 0
		})
	}
}

func (f *dockerFleet) waitAPI() {
	f.t.Helper()
	waitFor(f.t, "the coordinator API", 60*time.Second, func() bool {
		_, err := f.client.List(f.t.Context(), &sluicev1.ListRunsRequest{})
		return err == nil
	})
}

func (f *dockerFleet) kill(name string) {
	f.t.Helper()
	if _, err := f.docker.ContainerKill(f.t.Context(), f.ctrs[name].GetContainerID(), client.ContainerKillOptions{Signal: "KILL"}); err != nil {
		f.t.Fatalf("kill -9 %s: %v", name, err)
	}
	waitFor(f.t, name+" to die", 30*time.Second, func() bool {
		st, err := f.ctrs[name].State(f.t.Context())
		return err == nil && !st.Running
	})
}

func (f *dockerFleet) stop(name string) {
	f.t.Helper()
	timeout := 10 * time.Second
	if err := f.ctrs[name].Stop(f.t.Context(), &timeout); err != nil {
		f.t.Fatalf("stop %s: %v", name, err)
	}
}

func (f *dockerFleet) start(name string) {
	f.t.Helper()
	if err := f.ctrs[name].Start(f.t.Context()); err != nil {
		f.t.Fatalf("start %s again: %v", name, err)
	}
}

// submit submits a run for main, retrying while a fault makes the fleet unreachable; every
// run it returns is one the checker will look for.
func (f *dockerFleet) submit(yaml string) string {
	f.t.Helper()
	var err error
	for try := 0; try < 30; try++ {
		var st *sluicev1.RunState
		st, err = f.client.Submit(f.t.Context(), &sluicev1.SubmitRunRequest{SpecYaml: yaml, File: "pipeline.yaml", Ref: "main"})
		if err == nil {
			f.mu.Lock()
			f.submitted = append(f.submitted, st.GetId())
			f.mu.Unlock()
			return st.GetId()
		}
		time.Sleep(time.Second)
	}
	f.t.Fatalf("submit: %v", err)
	return ""
}

func (f *dockerFleet) get(id string) (*sluicev1.RunState, error) {
	return f.client.Get(f.t.Context(), id)
}

// waitRuns waits until every run is terminal and fails the test unless each passed.
func (f *dockerFleet) waitRuns(limit time.Duration, ids ...string) {
	f.t.Helper()
	pending := map[string]bool{}
	for _, id := range ids {
		pending[id] = true
	}
	deadline := time.Now().Add(limit)
	for len(pending) > 0 {
		for id := range pending {
			st, err := f.get(id)
			if err != nil || !st.GetStatus().Terminal() {
				continue
			}
			delete(pending, id)
			if st.GetStatus() != sluicev1.RunStatus_RUN_STATUS_PASSED {
				f.t.Errorf("run %s %s: %s", id, st.GetStatus().Short(), stageMessages(st))
			}
		}
		if len(pending) == 0 {
			return
		}
		if time.Now().After(deadline) {
			var stuck []string
			for id := range pending {
				st, err := f.get(id)
				stuck = append(stuck, fmt.Sprintf("%s: %s %s (err %v)", id, st.GetStatus().Short(), stageStates(st), err))
			}
			f.t.Fatalf("%d of %d runs not ended after %s:\n%s", len(pending), len(ids), limit, strings.Join(stuck, "\n"))
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// stageStates is each stage's status, attempt and shards' phases, for a run that is stuck.
func stageStates(st *sluicev1.RunState) string {
	var parts []string
	for _, s := range st.GetStages() {
		var shards []string
		for _, sh := range s.GetShards() {
			shards = append(shards, fmt.Sprintf("%s@%s#%d", strings.ToLower(strings.TrimPrefix(sh.GetPhase().String(), "RESULT_PHASE_")), sh.GetWorker(), sh.GetDelivery()))
		}
		parts = append(parts, fmt.Sprintf("%s=%s/%d[%s] queued %s", s.GetName(), s.GetStatus().Short(), s.GetAttempt(), strings.Join(shards, ","), s.GetQueuedAt().AsTime().Format(time.TimeOnly)))
	}
	return strings.Join(parts, " ")
}

func stageMessages(st *sluicev1.RunState) string {
	var parts []string
	for _, s := range st.GetStages() {
		parts = append(parts, s.GetName()+" "+s.GetStatus().Short()+": "+s.GetMessage())
	}
	return strings.Join(parts, "; ")
}

// holder waits until the stage runs and returns the worker that runs it.
func (f *dockerFleet) holder(id, stage string) string {
	f.t.Helper()
	var worker string
	waitFor(f.t, "run "+id+" stage "+stage+" to start", 60*time.Second, func() bool {
		st, err := f.get(id)
		if err != nil {
			return false
		}
		for _, s := range st.GetStages() {
			if s.GetName() == stage && s.GetStatus() == sluicev1.StageStatus_STAGE_STATUS_RUNNING && len(s.GetShards()) > 0 {
				worker = s.GetShards()[0].GetWorker()
			}
		}
		return worker != ""
	})
	return worker
}

func (f *dockerFleet) shard(id, stage string) *sluicev1.ShardState {
	f.t.Helper()
	st, err := f.get(id)
	if err != nil {
		f.t.Fatal(err)
	}
	for _, s := range st.GetStages() {
		if s.GetName() == stage && len(s.GetShards()) > 0 {
			return s.GetShards()[0]
		}
	}
	f.t.Fatalf("run %s has no shard of stage %s", id, stage)
	return nil
}

// history reads back what the fleet stored: every event, every FINAL result, and the state
// of every submitted run.
func (f *dockerFleet) history() history {
	f.t.Helper()
	names := bus.Names{Prefix: bus.DefaultPrefix}
	h := history{submitted: f.submitted, states: map[string]*sluicev1.RunState{}}
	for _, msg := range bustest.Stored(f.t, f.js, names.EventsStream(), names.AllEvents()) {
		var e sluicev1.Event
		if err := proto.Unmarshal(msg.Data(), &e); err != nil {
			f.t.Fatalf("event %s: %v", msg.Subject(), err)
		}
		h.events = append(h.events, &e)
	}
	for _, msg := range bustest.Stored(f.t, f.js, names.ResultsStream(), names.AllResults()) {
		var r sluicev1.Result
		if err := proto.Unmarshal(msg.Data(), &r); err != nil {
			f.t.Fatalf("result %s: %v", msg.Subject(), err)
		}
		if r.GetPhase() == sluicev1.ResultPhase_RESULT_PHASE_FINAL {
			h.finals = append(h.finals, &r)
		}
	}
	for _, id := range f.submitted {
		st, err := f.get(id)
		switch {
		case errors.Is(err, coordinator.ErrNotFound):
		case err != nil:
			f.t.Fatalf("read run %s: %v", id, err)
		default:
			h.states[id] = st
		}
	}
	return h
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

const (
	onePass = "version: 1\nname: %s\nstages:\n  ok: {kind: static, run: [\"true\"]}\n"
	chain   = "version: 1\nname: %s\nstages:\n" +
		"  a: {kind: static, run: [\"sleep 0.3\"]}\n" +
		"  b: {kind: static, needs: [a], run: [\"sleep 0.3\"]}\n" +
		"  c: {kind: static, needs: [b], run: [\"sleep 0.3\"]}\n"
	slow = "version: 1\nname: %s\nstages:\n  slow: {kind: static, timeout: 2m, run: [\"echo start on $(hostname); sleep %d; echo done on $(hostname)\"]}\n"
)

// TestFleetInContainersUnderFaults runs one fleet of containers through the faults a
// self-hosted fleet meets, one after another, then reads back everything it stored: every
// submitted run must have ended, exactly once, and no stage attempt may have two outcomes.
func TestFleetInContainersUnderFaults(t *testing.T) {
	f := startDockerFleet(t)
	f.coordinator("c1")
	f.coordinator("c2")
	for _, w := range []string{"w1", "w2", "w3"} {
		f.worker(w)
	}
	f.waitRuns(2*time.Minute, f.submit(fmt.Sprintf(onePass, "warm-up")))
	first := f.submitted[0]

	t.Run("worker killed mid-stage", func(t *testing.T) {
		id := f.submit(fmt.Sprintf(slow, "kill-worker", 6))
		victim := f.holder(id, "slow")
		f.kill(victim)
		f.waitRuns(2*time.Minute, id)
		if sh := f.shard(id, "slow"); sh.GetWorker() == victim || sh.GetDelivery() < 2 {
			t.Errorf("the stage ended on %s at delivery %d; want another worker than the killed %s", sh.GetWorker(), sh.GetDelivery(), victim)
		}
		f.start(victim)
	})

	t.Run("coordinator killed", func(t *testing.T) {
		var ids []string
		for i := range 30 {
			ids = append(ids, f.submit(fmt.Sprintf(chain, "kill-coordinator-"+strconv.Itoa(i))))
		}
		time.Sleep(time.Second)
		f.kill("c1")
		f.waitRuns(3*time.Minute, ids...)
		f.start("c1")
	})

	t.Run("one NATS node stopped", func(t *testing.T) {
		f.kill("nats-3")
		var ids []string
		for i := range 30 {
			ids = append(ids, f.submit(fmt.Sprintf(chain, "node-down-"+strconv.Itoa(i))))
		}
		f.waitRuns(3*time.Minute, ids...)
		f.start("nats-3")
		f.waitNATS("nats-3")
	})

	t.Run("worker cut off past the ack wait", func(t *testing.T) {
		id := f.submit(fmt.Sprintf(slow, "partition", 10))
		victim := f.holder(id, "slow")
		ctrID := f.ctrs[victim].GetContainerID()
		if _, err := f.docker.NetworkDisconnect(t.Context(), f.net.ID, client.NetworkDisconnectOptions{Container: ctrID, Force: true}); err != nil {
			t.Fatalf("disconnect %s: %v", victim, err)
		}
		time.Sleep(3 * fleetAckWait)
		if _, err := f.docker.NetworkConnect(t.Context(), f.net.ID, client.NetworkConnectOptions{Container: ctrID,
			EndpointConfig: &dockernet.EndpointSettings{Aliases: []string{victim}}}); err != nil {
			t.Fatalf("reconnect %s: %v", victim, err)
		}
		f.waitRuns(2*time.Minute, id)
		// Both copies may finish; the first final result wins and the checker sees that the
		// stage ended once. The fleet must not have waited for the cut-off worker, though.
		names := bus.Names{Prefix: bus.DefaultPrefix}
		var log []byte
		for _, msg := range bustest.Stored(t, f.js, names.LogsStream(), names.Log(id, "slow")) {
			log = append(log, msg.Data()...)
		}
		tookOver := false
		for name := range f.ctrs {
			if name != victim && bytes.Contains(log, []byte("start on "+name)) {
				tookOver = true
			}
		}
		if !tookOver {
			t.Errorf("no other worker took over the task of the cut-off %s; the stage's log:\n%s", victim, log)
		}
	})

	t.Run("whole cluster restarted", func(t *testing.T) {
		var ids []string
		for i := range 10 {
			ids = append(ids, f.submit(fmt.Sprintf(slow, "cluster-restart-"+strconv.Itoa(i), 2)))
		}
		for _, h := range []string{"nats-1", "nats-2", "nats-3"} {
			f.stop(h)
		}
		for _, h := range []string{"nats-1", "nats-2", "nats-3"} {
			f.start(h)
		}
		f.waitNATS("nats-1", "nats-2", "nats-3")
		f.waitAPI()
		ids = append(ids, f.submit(fmt.Sprintf(onePass, "after-restart")))
		f.waitRuns(3*time.Minute, ids...)
		st, err := f.get(first)
		if err != nil || st.GetStatus() != sluicev1.RunStatus_RUN_STATUS_PASSED {
			t.Fatalf("the first run after the cluster restart: %v %v; the file store must keep it", st.GetStatus(), err)
		}
	})

	t.Run("1000 concurrent runs", func(t *testing.T) {
		const runs, submitters = 1000, 16
		started := time.Now()
		ids := make([]string, runs)
		var wg sync.WaitGroup
		for s := range submitters {
			wg.Go(func() {
				for i := s; i < runs; i += submitters {
					ids[i] = f.submit(fmt.Sprintf(onePass, "many-"+strconv.Itoa(i)))
				}
			})
		}
		wg.Wait()
		submitted := time.Since(started)
		f.waitRuns(5*time.Minute, ids...)
		t.Logf("%d runs submitted in %s, all ended in %s (%.0f runs/s)", runs, submitted.Round(time.Millisecond),
			time.Since(started).Round(time.Millisecond), runs/time.Since(started).Seconds())
	})

	// A transition's events are published right after its state is stored: give the last
	// ones a moment before a run without its terminal event counts as not ended.
	v := check(f.history())
	for deadline := time.Now().Add(15 * time.Second); v.unended > 0 && time.Now().Before(deadline); {
		time.Sleep(time.Second)
		v = check(f.history())
	}
	t.Log(v)
	if path := os.Getenv("SLUICE_FLEET_REPORT"); path != "" {
		if err := os.WriteFile(path, []byte(v.String()+"\n"), 0o644); err != nil {
			t.Error(err)
		}
	}
	for _, c := range v.conflicts {
		t.Error(c)
	}
	if !v.sound() {
		t.Fatalf("the fleet lost or doubled outcomes: %s", v)
	}
}
