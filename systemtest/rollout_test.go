package systemtest

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/sluice-ci/sluice/deploy/proxy"
	sluicev1 "github.com/sluice-ci/sluice/proto/sluice/v1"
)

// production is a stable and a canary backend behind the builtin weighted proxy, served by
// this test process, with steady client traffic through it; the sluice processes reach its
// admin API on loopback as they would a `sluice router`.
type production struct {
	proxy *proxy.Proxy
	admin string
}

func startProduction(t *testing.T) *production {
	t.Helper()
	ok := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok\n") })
	stable, canary := httptest.NewServer(ok), httptest.NewServer(ok)
	t.Cleanup(stable.Close)
	t.Cleanup(canary.Close)
	su, _ := url.Parse(stable.URL)
	cu, _ := url.Parse(canary.URL)
	p, err := proxy.New(proxy.Config{Stable: su, Canary: cu})
	if err != nil {
		t.Fatal(err)
	}
	front, admin := httptest.NewServer(p), httptest.NewServer(p.AdminHandler())
	t.Cleanup(front.Close)
	t.Cleanup(admin.Close)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	wg.Go(func() {
		tick := time.NewTicker(4 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				if resp, err := http.Get(front.URL); err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					_ = resp.Body.Close()
				}
			}
		}
	})
	return &production{proxy: p, admin: admin.Listener.Addr().String()}
}

// pipeline is a rollout whose first step analyses for `pause`, long enough to break things
// in the middle of it.
func (p *production) pipeline(pause time.Duration) string {
	return fmt.Sprintf(`version: 1
name: rollout
stages:
  production:
    kind: traffic-shift
    rollout:
      router: {type: builtin, admin: %q}
      steps: [{weight: 10, pause: %s}, {weight: 100}]
      analysis:
        interval: 1s
        provider: {type: builtin}
        metrics: [{name: error_rate, max: 0.01}]
        judge: {type: thresholds, min_samples: 5}
`, p.admin, pause)
}

// analysing waits until a worker holds the analysis of the first step, and returns it.
func (c *cluster) analysing(id string) string {
	c.t.Helper()
	var worker string
	waitFor(c.t, "the analysis to start", 30*time.Second, func() bool {
		s := c.stage(id, "production")
		if s.GetRollout().GetPhase() != sluicev1.RolloutPhase_ROLLOUT_PHASE_ANALYSING {
			return false
		}
		sh := s.GetShards()[0]
		worker = sh.GetWorker()
		return sh.GetPhase() == sluicev1.ResultPhase_RESULT_PHASE_STARTED
	})
	return worker
}

func TestRolloutSurvivesATrafficShiftWorkerKilledMidAnalysis(t *testing.T) {
	c := newCluster(t)
	c.coordinator("coordinator")
	prod := startProduction(t)
	w1 := c.worker("ts1", "traffic-shift")
	id := c.submit(prod.pipeline(6*time.Second), "main")
	if holder := c.analysing(id); holder != "ts1" {
		t.Fatalf("analysis held by %q", holder)
	}
	w1.kill()
	c.worker("ts2", "traffic-shift")
	st := c.wait(id, 60*time.Second)
	s := st.GetStages()[0]
	if s.GetRollout().GetPhase() != sluicev1.RolloutPhase_ROLLOUT_PHASE_PROMOTED || prod.proxy.Weight() != 100 {
		t.Fatalf("rollout %v at %d%%: %s", s.GetRollout().GetPhase(), prod.proxy.Weight(), s.GetMessage())
	}
	// The analysis was redelivered; everything after ran on the surviving worker.
	if sh := s.GetShards()[0]; sh.GetWorker() != "ts2" {
		t.Fatalf("last action on %s", sh.GetWorker())
	}
	for _, v := range s.GetRollout().GetVerdicts() {
		if v.GetVerdict().GetOutcome() == sluicev1.VerdictOutcome_VERDICT_OUTCOME_UNHEALTHY {
			t.Fatalf("unhealthy verdict on a healthy canary: %v", v)
		}
	}
}

func TestRolloutContinuesAfterTheCoordinatorRestarts(t *testing.T) {
	c := newCluster(t)
	coord := c.coordinator("c1")
	prod := startProduction(t)
	c.worker("ts1", "traffic-shift")
	id := c.submit(prod.pipeline(3*time.Second), "main")
	c.analysing(id)
	coord.kill()
	// The analysis ends while no coordinator runs; its result waits in the stream.
	time.Sleep(4 * time.Second)
	if w := prod.proxy.Weight(); w != 10 {
		t.Fatalf("weight %d with no coordinator: nothing may move without one", w)
	}
	c.coordinator("c2")
	st := c.wait(id, 60*time.Second)
	if ro := st.GetStages()[0].GetRollout(); ro.GetPhase() != sluicev1.RolloutPhase_ROLLOUT_PHASE_PROMOTED || prod.proxy.Weight() != 100 {
		t.Fatalf("rollout %v at %d%% after the restart", ro.GetPhase(), prod.proxy.Weight())
	}
}
