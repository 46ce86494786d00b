package coordinator

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/sluice-ci/sluice/internal/auth"
	"github.com/sluice-ci/sluice/internal/bus"
	"github.com/sluice-ci/sluice/internal/bus/bustest"
	"github.com/sluice-ci/sluice/internal/realtest"
	sluicev1 "github.com/sluice-ci/sluice/proto/sluice/v1"
)

// browser is a headless Chromium on the system's binary.
func browser(t *testing.T) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(realtest.Binary(t, "chromium")), chromedp.WindowSize(1280, 900))
	if os.Geteuid() == 0 {
		opts = append(opts, chromedp.NoSandbox)
	}
	alloc, cancelAlloc := chromedp.NewExecAllocator(t.Context(), opts...)
	ctx, cancel := chromedp.NewContext(alloc)
	// A page that never shows what a test waits for fails the test, not the whole package.
	ctx, cancelWait := context.WithTimeout(ctx, time.Minute)
	t.Cleanup(func() { cancelWait(); cancel(); cancelAlloc() })
	return ctx
}

// signIn signs the browser in to the dashboard at url as the observer (reads, by cookie)
// and gives its pages the approver's token for the buttons, as a user pasting it would.
func signIn(t *testing.T, ctx context.Context, s *bustest.Secured, url string) {
	t.Helper()
	token := func(r auth.Role) string {
		data, err := os.ReadFile(s.Layout.Token(r, auth.DefaultUser))
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(data))
	}
	if err := chromedp.Do(ctx,
		chromedp.Navigate(url+"/login"),
		chromedp.SendKeys(chromedp.CSS(`input[name="token"]`), token(auth.RoleObserver)),
		chromedp.Submit(chromedp.CSS(`input[name="token"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#runs`)),
	); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[any](`sessionStorage.setItem("sluice-token", `+strconv.Quote(token(auth.RoleApprover))+`)`)); err != nil {
		t.Fatal(err)
	}
}

// nodeStatuses is what the page's graph shows: stage -> the status its node is drawn with.
const nodeStatuses = `Object.fromEntries([...document.querySelectorAll("#dag g.node")].map(n => [n.dataset.stage, n.dataset.status]))`

// The run page in a real browser draws the run's DAG (a node per stage, an edge per need)
// and changes as stages pass, without a reload; a stage's panel shows its logs. The test
// keeps a screenshot of the finished run (.build/dashboard-run.png).
func TestDashboardShowsTheRunLiveInABrowser(t *testing.T) {
	env := bustest.Start(t, bus.Config{})
	c, _ := startCoordinator(t, env)
	held := make(chan *sluicev1.Task, 1)
	w := startWorker(t, env, func(task *sluicev1.Task) *sluicev1.Result {
		if task.GetStage() == "b" {
			held <- task
			return nil
		}
		return pass(task)
	})
	srv := httptest.NewServer(c.Handler())
	// Cleanups run last first: the browser goes before the server waits for its streams.
	t.Cleanup(srv.Close)
	ctx := browser(t)
	st := submit(t, env, "main", stage("a"), stage("b", "a"), stage("c", "b"), stage("d", "a"))
	task := <-held

	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/runs/"+st.GetId()), chromedp.WaitVisible(chromedp.CSS(`#dag g.node[data-stage="c"]`))); err != nil {
		t.Fatal(err)
	}
	statuses, err := chromedp.Run(ctx, chromedp.Evaluate[map[string]string](nodeStatuses))
	if err != nil {
		t.Fatal(err)
	}
	edges, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("#dag path.edge").length`))
	if err != nil {
		t.Fatal(err)
	}
	if statuses["a"] != "passed" || statuses["d"] != "passed" || (statuses["b"] != "queued" && statuses["b"] != "running") || statuses["c"] != "pending" || edges != 3 {
		t.Fatalf("the graph of the running run: %v, %d edges; want a and d passed, b queued or running, c pending, 3 edges", statuses, edges)
	}

	// b passes: the page changes by itself.
	w.report(task, pass(task))
	waitFor(t, "the page to show the run passed", func() bool {
		statuses, err = chromedp.Run(ctx, chromedp.Evaluate[map[string]string](nodeStatuses))
		if err != nil {
			return false
		}
		status, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#run-status")))
		return err == nil && statuses["b"] == "passed" && statuses["c"] == "passed" && status == "passed"
	})

	if err := chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(`#dag g.node[data-stage="b"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#details pre.logs`)),
	); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`!document.querySelector("#details pre.logs").textContent.startsWith("loading")`, chromedp.WithPollingTimeout(10*time.Second))); err != nil {
		t.Fatal(err)
	}
	logs, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`#details pre.logs`)))
	if err != nil {
		t.Fatal(err)
	}
	live, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`#live`)))
	if err != nil {
		t.Fatal(err)
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	if logs != "(no output)" || live != "finished" {
		t.Errorf("stage b's panel shows logs %q and the page says %q; want (no output) and finished", logs, live)
	}
	shot := filepath.Join("..", ".build", "dashboard-run.png")
	if err := os.MkdirAll(filepath.Dir(shot), 0o755); err == nil && os.WriteFile(shot, png, 0o644) == nil {
		t.Logf("screenshot: %s", shot)
	}
	if !strings.HasPrefix(string(png), "\x89PNG") {
		t.Errorf("the screenshot is not a PNG")
	}
}

// On a fleet with authentication the run page offers an approval waiting as a button; an
// approver's token, given to the page, approves it through the HTTP API's header, and the
// page shows the run go on. Reads come with the sign-in cookie.
func TestDashboardApproveButtonActsAsTheApprover(t *testing.T) {
	s := bustest.StartSecured(t, bus.Config{})
	c := startSecuredCoordinator(t, s)
	startSecuredWorker(t, s, static, auth.DefaultUser)
	srv := httptest.NewServer(c.Handler())
	t.Cleanup(srv.Close)
	ctx := browser(t)
	st := submitYAML(t, clientAs(t, s, auth.RoleSubmitter, auth.DefaultUser), "feature",
		"version: 1\nname: web\nstages:\n  a: {kind: static, run: [\"true\"]}\n  gate: {kind: static, needs: [a], approval: required, run: [\"true\"]}\n")
	waitStage(t, &s.Env, st.GetId(), "gate", sluicev1.StageStatus_STAGE_STATUS_WAITING_APPROVAL)

	approve := chromedp.CSS(`button[data-action="approve"][data-stage="gate"]`)
	signIn(t, ctx, s, srv.URL)
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/runs/"+st.GetId()), chromedp.WaitVisible(approve), chromedp.Click(approve)); err != nil {
		t.Fatal(err)
	}
	final := waitRun(t, &s.Env, st.GetId(), sluicev1.RunStatus_RUN_STATUS_PASSED)
	if by := final.GetStages()[1].GetApprovedBy(); by != "approver:default" {
		t.Errorf("gate approved by %q, want approver:default", by)
	}
	waitFor(t, "the page to show the run passed", func() bool {
		status, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#run-status")))
		return err == nil && status == "passed"
	})
}

// A rollout in progress is drawn as its canary's weight over time, with each verdict's
// numbers beside it.
func TestDashboardChartsARollout(t *testing.T) {
	env := bustest.Start(t, bus.Config{})
	c, _ := startCoordinator(t, env)
	startKindWorker(t, env, sluicev1.StageKind_STAGE_KIND_TRAFFIC_SHIFT, func(task *sluicev1.Task) *sluicev1.Result {
		a := task.GetRollout()
		if a.GetAction() != sluicev1.RolloutAction_ROLLOUT_ACTION_ANALYSE {
			return &sluicev1.Result{Outcome: sluicev1.Outcome_OUTCOME_PASSED, Worker: "ts"}
		}
		if a.GetWeight() == 50 {
			return nil // held: the rollout stays at 50%
		}
		v := healthy()
		v.Metrics = []*sluicev1.MetricVerdict{{Name: "error_rate", Outcome: sluicev1.VerdictOutcome_VERDICT_OUTCOME_HEALTHY, Canary: 0.002, Baseline: 0.003, Limit: 0.05, Rule: "max"}}
		return &sluicev1.Result{Outcome: sluicev1.Outcome_OUTCOME_PASSED, Worker: "ts", Verdict: v}
	})
	srv := httptest.NewServer(c.Handler())
	t.Cleanup(srv.Close)
	ctx := browser(t)
	st := submit(t, env, "main", rolloutStage())
	waitFor(t, "the rollout to reach 50%", func() bool {
		got, err := c.GetRun(t.Context(), st.GetId())
		return err == nil && got.GetStages()[0].GetRollout().GetWeight() == 50
	})
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/runs/"+st.GetId()), chromedp.WaitVisible(chromedp.CSS(`svg.rollout[data-stage="production"] path.weight`))); err != nil {
		t.Fatal(err)
	}
	title, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`section.panel h3`)))
	if err != nil {
		t.Fatal(err)
	}
	verdicts, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`table.verdicts`)))
	if err != nil {
		t.Fatal(err)
	}
	dots, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("svg.rollout circle.verdict.healthy").length`))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(title, "canary at 50%") || dots != 1 ||
		!strings.Contains(verdicts, "10%") || !strings.Contains(verdicts, "healthy") || !strings.Contains(verdicts, "error_rate: canary 0.002 vs baseline 0.003 (limit 0.05, max)") {
		t.Errorf("rollout panel %q, %d healthy verdict dots, verdicts:\n%s", title, dots, verdicts)
	}
}

// What a run carries is data from steps and callers: the dashboard shows it as text, and
// its policy runs no script but its own. A stage message that is markup stays text.
func TestDashboardShowsMarkupFromARunAsText(t *testing.T) {
	env := bustest.Start(t, bus.Config{})
	c, _ := startCoordinator(t, env)
	const markup = `<img src=x onerror="document.title='pwned'">`
	startWorker(t, env, func(*sluicev1.Task) *sluicev1.Result {
		return &sluicev1.Result{Outcome: sluicev1.Outcome_OUTCOME_FAILED, Worker: "scripted", Delivery: 1, Message: markup}
	})
	srv := httptest.NewServer(c.Handler())
	t.Cleanup(srv.Close)
	ctx := browser(t)
	st := submit(t, env, "main", stage("a"))
	waitRun(t, env, st.GetId(), sluicev1.RunStatus_RUN_STATUS_FAILED)

	resp, err := http.Get(srv.URL + "/runs/" + st.GetId())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe-inline' 'self'; script") {
		t.Errorf("Content-Security-Policy %q: want only the dashboard's own script", csp)
	}
	if err := chromedp.Do(ctx,
		chromedp.Navigate(srv.URL+"/runs/"+st.GetId()),
		chromedp.WaitVisible(chromedp.CSS(`#dag g.node[data-stage="a"]`)),
		chromedp.Click(chromedp.CSS(`#dag g.node[data-stage="a"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#details p.msg`)),
	); err != nil {
		t.Fatal(err)
	}
	shown, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`#details p.msg`)))
	if err != nil {
		t.Fatal(err)
	}
	images, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("img").length`))
	if err != nil {
		t.Fatal(err)
	}
	title, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.title`))
	if err != nil {
		t.Fatal(err)
	}
	if shown != markup || images != 0 || title == "pwned" {
		t.Errorf("the stage message shows as %q, %d images on the page, title %q; want the markup as text and nothing run", shown, images, title)
	}
}

// The rollout panel of a secured fleet offers the rollout verbs to an approver: Pause holds
// the rollout (the page then offers Resume and names who paused it), Promote skips the
// analysis to the next step, Abort rolls it back, and the failed stage is then offered for
// Retry, which reopens it as its next attempt.
func TestDashboardRolloutVerbsAndRetry(t *testing.T) {
	s := bustest.StartSecured(t, bus.Config{})
	c := startSecuredCoordinator(t, s)
	ts := sluicev1.StageKind_STAGE_KIND_TRAFFIC_SHIFT
	tsNC, tsJS := s.Connect(t, auth.WorkerRole(ts), auth.DefaultUser)
	startWorkerAs(t, &s.Env, tsJS, bus.IdentityOf(tsNC), ts, func(task *sluicev1.Task) *sluicev1.Result {
		if task.GetRollout().GetAction() == sluicev1.RolloutAction_ROLLOUT_ACTION_ANALYSE {
			return nil // held: each step's analysis lasts until a verb moves the rollout on
		}
		return &sluicev1.Result{Outcome: sluicev1.Outcome_OUTCOME_PASSED, Worker: "ts"}
	})
	srv := httptest.NewServer(c.Handler())
	t.Cleanup(srv.Close)
	ctx := browser(t)
	st, err := clientAs(t, s, auth.RoleSubmitter, auth.DefaultUser).Submit(t.Context(), &sluicev1.SubmitRunRequest{
		Spec: &sluicev1.PipelineSpec{Version: 1, Name: "web", Stages: []*sluicev1.StageSpec{rolloutStage()}}, Ref: "main",
	})
	if err != nil {
		t.Fatal(err)
	}
	rollout := func() *sluicev1.RolloutState {
		got, err := c.GetRun(t.Context(), st.GetId())
		if err != nil {
			t.Fatal(err)
		}
		return got.GetStages()[0].GetRollout()
	}
	waitFor(t, "the rollout to analyse its first step", func() bool {
		return rollout().GetPhase() == sluicev1.RolloutPhase_ROLLOUT_PHASE_ANALYSING
	})
	button := func(action string) chromedp.CSS {
		return chromedp.CSS(`section.panel button[data-action="` + action + `"][data-stage="production"]`)
	}
	signIn(t, ctx, s, srv.URL)
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/runs/"+st.GetId()), chromedp.WaitVisible(button("pause"))); err != nil {
		t.Fatal(err)
	}

	if err := chromedp.Do(ctx, chromedp.Click(button("pause")), chromedp.WaitVisible(button("resume"))); err != nil {
		t.Fatal(err)
	}
	if ro := rollout(); !ro.GetHeld() || ro.GetHeldBy() != "approver:default" {
		t.Fatalf("after Pause the rollout is held %v by %q; want held by approver:default", ro.GetHeld(), ro.GetHeldBy())
	}
	title, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`section.panel h3`)))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(title, "paused by approver:default") {
		t.Errorf("the rollout panel of a paused rollout reads %q; want who paused it", title)
	}
	if err := chromedp.Do(ctx, chromedp.Click(button("resume")), chromedp.WaitVisible(button("pause"))); err != nil {
		t.Fatal(err)
	}
	if rollout().GetHeld() {
		t.Fatal("after Resume the rollout is still held")
	}

	if err := chromedp.Do(ctx, chromedp.Click(button("promote"))); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "Promote to move the rollout to its next step", func() bool {
		ro := rollout()
		return ro.GetWeight() == 50 && ro.GetPhase() == sluicev1.RolloutPhase_ROLLOUT_PHASE_ANALYSING
	})

	if err := chromedp.Do(ctx, chromedp.Click(button("abort"))); err != nil {
		t.Fatal(err)
	}
	failed := waitRun(t, &s.Env, st.GetId(), sluicev1.RunStatus_RUN_STATUS_FAILED)
	if ro := failed.GetStages()[0].GetRollout(); ro.GetPhase() != sluicev1.RolloutPhase_ROLLOUT_PHASE_ROLLED_BACK || ro.GetWeight() != 0 {
		t.Fatalf("after Abort the rollout is %v at %d%%; want rolled back to 0%%", ro.GetPhase(), ro.GetWeight())
	}

	retry := chromedp.CSS(`#summary button[data-action="retry"][data-stage="production"]`)
	if err := chromedp.Do(ctx, chromedp.WaitVisible(retry), chromedp.Click(retry)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "Retry to reopen the stage as its second attempt", func() bool {
		got, err := c.GetRun(t.Context(), st.GetId())
		return err == nil && got.GetStages()[0].GetAttempt() == 2 && !got.GetStatus().Terminal()
	})
}

// The runs list is live: a run submitted while the page is open appears in it and its
// status changes without a reload, and its id leads to the run's page.
func TestDashboardRunsListIsLive(t *testing.T) {
	env := bustest.Start(t, bus.Config{})
	c, _ := startCoordinator(t, env)
	held := make(chan *sluicev1.Task, 1)
	w := startWorker(t, env, func(task *sluicev1.Task) *sluicev1.Result {
		if task.GetStage() == "slow" {
			select {
			case held <- task:
			default: // a redelivery of the task already held
			}
			return nil
		}
		return pass(task)
	})
	srv := httptest.NewServer(c.Handler())
	t.Cleanup(srv.Close)
	ctx := browser(t)
	first := submit(t, env, "main", stage("a"))
	waitRun(t, env, first.GetId(), sluicev1.RunStatus_RUN_STATUS_PASSED)

	row := func(id string) string { return `#runs tr[data-run="` + id + `"]` }
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/"), chromedp.WaitVisible(chromedp.CSS(row(first.GetId())))); err != nil {
		t.Fatal(err)
	}
	second := submit(t, env, "feature", stage("slow"))
	task := <-held
	status := func(id string) string {
		got, err := chromedp.Run(ctx, chromedp.Evaluate[string](`(document.querySelector(`+strconv.Quote(row(id)+` td.s`)+`) || {}).textContent || ""`))
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	waitFor(t, "the new run to appear running in the open list", func() bool { return status(second.GetId()) == "running" })
	order, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll("#runs tr[data-run]")].map(r => r.dataset.run)`))
	if err != nil {
		t.Fatal(err)
	}
	if len(order) != 2 || order[0] != second.GetId() {
		t.Errorf("the list shows %v; want the new run %s first, then %s", order, second.GetId(), first.GetId())
	}
	w.report(task, pass(task))
	waitFor(t, "the run's status to change in the list", func() bool { return status(second.GetId()) == "passed" })

	if err := chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(row(second.GetId())+` a`)),
		chromedp.WaitVisible(chromedp.CSS(`#dag g.node[data-stage="slow"]`)),
	); err != nil {
		t.Fatal(err)
	}
	if got, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#run-status"))); err != nil || got != "passed" {
		t.Errorf("the run page from the list shows %q (%v); want passed", got, err)
	}
}
