package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/input"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// Status of a journey or a step.
type Status string

// Statuses.
const (
	StatusPassed  Status = "passed"
	StatusFailed  Status = "failed"  // a step failed: the application is wrong
	StatusError   Status = "error"   // the journey could not run: no browser, a crash
	StatusSkipped Status = "skipped" // a step after the one that failed
)

// Result is the outcome of one journey.
type Result struct {
	Journey  string
	File     string
	Status   Status
	Message  string // why it failed: "step 3 (login.yaml:9) click \"#save\": ..."
	Failed   int    // index (1-based) of the step that failed, 0 if none
	Line     int    // line of that step
	Steps    []StepResult
	Duration time.Duration

	Console        []ConsoleEntry // console messages and browser log entries, in order
	Exceptions     []string       // uncaught JavaScript exceptions
	FailedRequests []string       // "GET http://.../x.png: 404" or a network error

	Screenshots []Screenshot
}

// StepResult is the outcome of one step.
type StepResult struct {
	Step     Step
	Status   Status
	Error    string
	Duration time.Duration
}

// ConsoleEntry is a console message or a browser log entry.
type ConsoleEntry struct {
	Level string // error, warning, info, log, debug
	Text  string
}

// Screenshot is a PNG taken by a screenshot step or after a failed step.
type Screenshot struct {
	Name string // "03-click-failed.png", "after-login.png"
	Step int    // 1-based index of the step
	PNG  []byte
}

// ConsoleErrors are the console entries at level error plus the uncaught exceptions.
func (r *Result) ConsoleErrors() []string {
	var out []string
	for _, c := range r.Console {
		if c.Level == "error" {
			out = append(out, c.Text)
		}
	}
	return append(out, r.Exceptions...)
}

// RunOptions are per-run settings.
type RunOptions struct {
	// BaseURL resolves relative goto URLs of journeys that set no base_url.
	BaseURL string
}

// maxRecorded bounds each list of recorded console entries, exceptions and failed requests:
// a page that logs in a loop must not exhaust memory.
const maxRecorded = 200

// screenshotTimeout bounds taking a screenshot, after a failed step too.
const screenshotTimeout = 5 * time.Second

// Run runs one journey in a fresh incognito browser context and reports its outcome. It
// never returns nil. A cancelled ctx stops the journey at once.
func (e *Engine) Run(ctx context.Context, j *Journey, o RunOptions) *Result {
	start := time.Now()
	res := &Result{Journey: j.Name, File: j.File, Status: StatusPassed}
	defer func() { res.Duration = time.Since(start) }()
	b, err := e.browser(ctx)
	if err != nil {
		res.Status, res.Message = StatusError, err.Error()
		return res
	}
	// A new browser context per journey: an incognito profile, disposed of when the tab closes.
	tab, cancel := chromedp.NewContext(b.ctx, chromedp.WithNewBrowserContext())
	defer cancel()
	stop := context.AfterFunc(ctx, cancel)
	defer stop()
	rec := &recorder{requests: map[network.RequestID]string{}, documents: map[network.RequestID]bool{}}
	if err := chromedp.Listen(tab, rec.handle); err != nil {
		res.Status, res.Message = StatusError, fmt.Sprintf("open a tab: %v", e.crashed(b, err))
		return res
	}
	rec.mu.Lock()
	rec.mainFrame = cdp.FrameID(chromedp.FromContext(tab).Target.TargetID)
	rec.mu.Unlock()

	base := j.BaseURL
	if base == "" {
		base = o.BaseURL
	}
	r := &runner{tab: tab, rec: rec, base: base, res: res}
	for i, s := range j.Steps {
		if res.Status != StatusPassed {
			res.Steps = append(res.Steps, StepResult{Step: s, Status: StatusSkipped})
			continue
		}
		timeout := s.Timeout
		if timeout == 0 {
			timeout = j.Timeout
		}
		if timeout == 0 {
			timeout = e.c.StepTimeout
		}
		sctx, scancel := context.WithTimeout(tab, timeout)
		t0 := time.Now()
		err := r.step(sctx, i+1, s, timeout)
		scancel()
		sr := StepResult{Step: s, Status: StatusPassed, Duration: time.Since(t0)}
		if err != nil {
			err = e.crashed(b, err)
			if ctx.Err() != nil {
				err = fmt.Errorf("journey stopped: %w", context.Cause(ctx))
			}
			sr.Status, sr.Error = StatusFailed, err.Error()
			res.Status, res.Failed, res.Line = StatusFailed, i+1, s.Line
			if errors.Is(err, ErrBrowserCrashed) {
				res.Status = StatusError
			}
			res.Message = fmt.Sprintf("step %d (%s:%d) %s: %v", i+1, j.File, s.Line, s, err)
			if !b.gone() && ctx.Err() == nil {
				r.screenshot(i+1, fmt.Sprintf("%02d-%s-failed.png", i+1, s.Action))
			}
		}
		res.Steps = append(res.Steps, sr)
	}
	rec.copyTo(res)
	return res
}

// crashed wraps err with ErrBrowserCrashed when the browser is gone, so the caller tells a
// crash from a failed expectation; the next Run starts a new browser.
func (e *Engine) crashed(b *browser, err error) error {
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		b.dead.Store(true)
	}
	if !b.gone() {
		return err
	}
	return fmt.Errorf("%w (pid %d): %v", ErrBrowserCrashed, b.pid, err)
}

// recorder collects what a tab reports. Its handle runs on chromedp's read loop, so it only
// appends under a lock.
type recorder struct {
	mu        sync.Mutex
	mainFrame cdp.FrameID
	requests  map[network.RequestID]string // request id -> "METHOD URL"
	documents map[network.RequestID]bool   // requests of the main frame's documents
	console   []ConsoleEntry
	excepts   []string
	failed    []string
	docStatus int
	docURL    string
}

func (r *recorder) handle(ev any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch ev := ev.(type) {
	case *runtime.EventConsoleAPICalled:
		level := string(ev.Type)
		switch ev.Type {
		case runtime.ConsoleAPICalledTypeError, runtime.ConsoleAPICalledTypeAssert:
			level = "error"
		case runtime.ConsoleAPICalledTypeWarning:
			level = "warning"
		}
		r.console = appendCapped(r.console, ConsoleEntry{Level: level, Text: argsText(ev.Args)})
	case *runtime.EventExceptionThrown:
		r.excepts = appendCapped(r.excepts, exceptionText(ev.ExceptionDetails))
	case *cdplog.EventEntryAdded:
		// The main document's own HTTP error is the goto step's business (it fails on a
		// status >= 400 unless it expects that status), not a console error of the page.
		if e := ev.Entry; e != nil && !isFavicon(e.URL) && !r.documents[e.NetworkRequestID] {
			text := e.Text
			if e.URL != "" {
				text += " (" + e.URL + ")"
			}
			r.console = appendCapped(r.console, ConsoleEntry{Level: string(e.Level), Text: text})
		}
	case *network.EventRequestWillBeSent:
		if len(r.requests) < 10*maxRecorded && ev.Request != nil {
			r.requests[ev.RequestID] = ev.Request.Method + " " + ev.Request.URL
		}
		if ev.Type == network.ResourceTypeDocument && ev.FrameID == r.mainFrame {
			r.documents[ev.RequestID] = true
		}
	case *network.EventResponseReceived:
		resp := ev.Response
		if resp == nil {
			return
		}
		if ev.Type == network.ResourceTypeDocument && ev.FrameID == r.mainFrame {
			r.docStatus, r.docURL = int(resp.Status), resp.URL
		}
		if resp.Status >= 400 && !isFavicon(resp.URL) {
			r.failed = appendCapped(r.failed, fmt.Sprintf("%s: %d %s", r.request(ev.RequestID, resp.URL), resp.Status, resp.StatusText))
		}
	case *network.EventLoadingFailed:
		if !ev.Canceled {
			r.failed = appendCapped(r.failed, fmt.Sprintf("%s: %s", r.request(ev.RequestID, ""), ev.ErrorText))
		}
	}
}

// isFavicon tells the browser's own request for /favicon.ico, which a page did not ask for:
// its 404 is not the page's error.
func isFavicon(u string) bool {
	p, err := url.Parse(u)
	return err == nil && p.Path == "/favicon.ico"
}

func (r *recorder) request(id network.RequestID, fallback string) string {
	if s, ok := r.requests[id]; ok {
		return s
	}
	if fallback != "" {
		return fallback
	}
	return "request " + string(id)
}

func appendCapped[T any](s []T, v T) []T {
	if len(s) >= maxRecorded {
		return s
	}
	return append(s, v)
}

func (r *recorder) copyTo(res *Result) {
	r.mu.Lock()
	defer r.mu.Unlock()
	// The engine's own notes (a screenshot that failed) follow what the page logged.
	res.Console = append(append([]ConsoleEntry(nil), r.console...), res.Console...)
	res.Exceptions = append([]string(nil), r.excepts...)
	res.FailedRequests = append([]string(nil), r.failed...)
}

func (r *recorder) consoleErrors() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, c := range r.console {
		if c.Level == "error" {
			out = append(out, c.Text)
		}
	}
	return append(out, r.excepts...)
}

func (r *recorder) document() (int, string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.docStatus, r.docURL
}

func argsText(args []*runtime.RemoteObject) string {
	parts := make([]string, 0, len(args))
	for _, a := range args {
		var s string
		if len(a.Value) > 0 && json.Unmarshal(a.Value, &s) == nil {
			parts = append(parts, s)
			continue
		}
		switch {
		case a.Description != "":
			parts = append(parts, a.Description)
		case len(a.Value) > 0:
			parts = append(parts, string(a.Value))
		default:
			parts = append(parts, string(a.Type))
		}
	}
	return strings.Join(parts, " ")
}

func exceptionText(d *runtime.ExceptionDetails) string {
	if d == nil {
		return "exception"
	}
	text := d.Text
	if d.Exception != nil && d.Exception.Description != "" {
		text = d.Exception.Description
		if i := strings.IndexByte(text, '\n'); i > 0 {
			text = text[:i] // the first line; the stack follows
		}
	}
	if d.URL != "" {
		text += fmt.Sprintf(" (%s:%d)", d.URL, d.LineNumber+1)
	}
	return text
}

// runner executes the steps of one journey in one tab.
type runner struct {
	tab  context.Context
	rec  *recorder
	base string
	res  *Result
}

func (r *runner) screenshot(step int, name string) {
	ctx, cancel := context.WithTimeout(r.tab, screenshotTimeout)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		r.res.Console = append(r.res.Console, ConsoleEntry{Level: "sluice", Text: fmt.Sprintf("screenshot %s: %v", name, err)})
		return
	}
	r.res.Screenshots = append(r.res.Screenshots, Screenshot{Name: name, Step: step, PNG: png})
}

// step runs one step; a timeout becomes "not ... within 5s" with what was seen instead.
func (r *runner) step(ctx context.Context, index int, s Step, timeout time.Duration) error {
	switch s.Action {
	case ActGoto:
		return r.gotoURL(ctx, s)
	case ActClick:
		err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(s.Selector)))
		return r.queryErr(ctx, err, s.Selector, "no visible element matches", timeout)
	case ActFill:
		err := chromedp.Do(ctx, chromedp.Focus(chromedp.CSS(s.Selector)), chromedp.Clear(chromedp.CSS(s.Selector)))
		if err != nil {
			return r.queryErr(ctx, err, s.Selector, "no element to fill matches", timeout)
		}
		if s.Value == "" {
			return nil
		}
		_, err = chromedp.Call(ctx, input.InsertText, input.InsertTextParams{Text: s.Value})
		return err
	case ActSelect:
		return r.poll(ctx, timeout, selectJS, s.Selector, s.Value, s.Label)
	case ActPress:
		k, _ := keyName(s.Key)
		if s.Selector != "" {
			if err := chromedp.Do(ctx, chromedp.Focus(chromedp.CSS(s.Selector))); err != nil {
				return r.queryErr(ctx, err, s.Selector, "no element to focus matches", timeout)
			}
		}
		return chromedp.Do(ctx, chromedp.KeyEvent(k))
	case ActWaitFor:
		switch {
		case s.Selector != "":
			return r.poll(ctx, timeout, visibleJS, s.Selector)
		case s.Text != "":
			return r.poll(ctx, timeout, textJS, "", s.Text)
		default:
			return r.waitURL(ctx, s.URL, timeout)
		}
	case ActExpectText:
		return r.poll(ctx, timeout, textJS, s.Selector, s.Text)
	case ActExpectURL:
		return r.waitURL(ctx, s.URL, timeout)
	case ActExpectStatus:
		status, u := r.rec.document()
		if status != s.Status {
			return fmt.Errorf("the page %s answered HTTP %d, want %d", u, status, s.Status)
		}
		return nil
	case ActExpectNoConsoleErrors:
		if errs := r.rec.consoleErrors(); len(errs) > 0 {
			return fmt.Errorf("%d console error(s): %s", len(errs), strings.Join(errs, "; "))
		}
		return nil
	case ActScreenshot:
		before := len(r.res.Screenshots)
		r.screenshot(index, s.Name+".png")
		if len(r.res.Screenshots) == before {
			return errors.New("could not take the screenshot")
		}
		return nil
	}
	return fmt.Errorf("unknown action %q", s.Action)
}

func (r *runner) gotoURL(ctx context.Context, s Step) error {
	u, err := resolve(r.base, s.URL)
	if err != nil {
		return err
	}
	resp, err := chromedp.Run(ctx, chromedp.NavigateResponse(u))
	var le *chromedp.LoadError
	switch {
	case errors.As(err, &le) && strings.Contains(le.ErrorText, "CONNECTION_REFUSED"):
		return fmt.Errorf("target %s is down: %s", hostOf(u), le.ErrorText)
	case errors.As(err, &le):
		return fmt.Errorf("cannot load %s: %s", u, le.ErrorText)
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%s did not load in time: %w", u, err)
	case err != nil:
		return fmt.Errorf("load %s: %w", u, err)
	case resp == nil:
		return nil
	}
	switch {
	case s.Status != 0 && int(resp.Status) != s.Status:
		return fmt.Errorf("%s answered HTTP %d %s, want %d", u, resp.Status, resp.StatusText, s.Status)
	case s.Status == 0 && resp.Status >= 400:
		return fmt.Errorf("%s answered HTTP %d %s", u, resp.Status, resp.StatusText)
	}
	return nil
}

func hostOf(u string) string {
	if p, err := url.Parse(u); err == nil && p.Host != "" {
		return p.Scheme + "://" + p.Host
	}
	return u
}

// resolve makes a goto URL absolute against the base URL.
func resolve(base, ref string) (string, error) {
	r, err := url.Parse(ref)
	if err != nil {
		return "", fmt.Errorf("bad URL %q: %w", ref, err)
	}
	if r.IsAbs() {
		if r.Scheme != "http" && r.Scheme != "https" {
			return "", fmt.Errorf("URL %q: journeys visit http and https pages only (a file: or other URL would let a journey read the worker's machine)", ref)
		}
		return ref, nil
	}
	if base == "" {
		return "", fmt.Errorf("relative URL %q and no base URL (set base_url in the journey or pass one to the run)", ref)
	}
	b, err := url.Parse(base)
	if err != nil || !b.IsAbs() || b.Scheme != "http" && b.Scheme != "https" {
		return "", fmt.Errorf("bad base URL %q: want an http or https URL", base)
	}
	return b.ResolveReference(r).String(), nil
}

// queryErr explains a chromedp query failure.
func (r *runner) queryErr(ctx context.Context, err error, sel, what string, timeout time.Duration) error {
	switch {
	case err == nil:
		return nil
	case ctx.Err() != nil && errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%s %q within %s", what, sel, timeout)
	// DOM.querySelector answers a selector it cannot parse with a generic DOM error.
	case strings.Contains(err.Error(), "DOM Error while querying") || strings.Contains(err.Error(), "not a valid selector"):
		return fmt.Errorf("%w %q: %v", ErrBadSelector, sel, err)
	}
	return err
}

// pollInterval is how often a condition is evaluated again while a step waits for it.
const pollInterval = 100 * time.Millisecond

// pollResult is what a condition function returns.
type pollResult struct {
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
	Fatal  string `json:"fatal"`
}

// poll evaluates fn (a JavaScript function returning {ok, detail, fatal}) with args until it
// says ok, says fatal, or ctx ends. Evaluation errors while a page navigates are retried.
func (r *runner) poll(ctx context.Context, timeout time.Duration, fn string, args ...string) error {
	argJSON, err := json.Marshal(args)
	if err != nil {
		return fmt.Errorf("encode arguments: %w", err)
	}
	expr := "(" + fn + ").apply(null, " + string(argJSON) + ")"
	var last string
	for {
		out, err := chromedp.Run(ctx, chromedp.Evaluate[pollResult](expr))
		switch {
		case err == nil && out.OK:
			return nil
		case err == nil && out.Fatal != "":
			return errors.New(out.Fatal)
		case err == nil:
			last = out.Detail
		}
		select {
		case <-ctx.Done():
			if last == "" && err != nil {
				last = err.Error()
			}
			return fmt.Errorf("not within %s: %s", timeout, last)
		case <-time.After(pollInterval):
		}
	}
}

func (r *runner) waitURL(ctx context.Context, pattern string, timeout time.Duration) error {
	re := urlPattern(pattern)
	var last string
	for {
		loc, err := chromedp.Run(ctx, chromedp.Location())
		if err == nil {
			last = loc
			if matchURL(re, pattern, loc) {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("URL is %s, want %s (waited %s)", last, pattern, timeout)
		case <-time.After(pollInterval):
		}
	}
}

// urlPattern compiles a URL pattern: literal text where "*" matches any run of characters
// but "/" and "**" any run at all.
func urlPattern(p string) *regexp.Regexp {
	var b strings.Builder
	b.WriteString("^")
	for i := 0; i < len(p); i++ {
		switch {
		case strings.HasPrefix(p[i:], "**"):
			b.WriteString(".*")
			i++
		case p[i] == '*':
			b.WriteString("[^/]*")
		default:
			b.WriteString(regexp.QuoteMeta(p[i : i+1]))
		}
	}
	b.WriteString("$")
	return regexp.MustCompile(b.String())
}

// matchURL matches a pattern that starts with "/" against the path and query of loc, and
// any other pattern against the whole URL.
func matchURL(re *regexp.Regexp, pattern, loc string) bool {
	if !strings.HasPrefix(pattern, "/") {
		return re.MatchString(loc)
	}
	u, err := url.Parse(loc)
	if err != nil {
		return false
	}
	if re.MatchString(u.EscapedPath()) {
		return true
	}
	return u.RawQuery != "" && re.MatchString(u.EscapedPath()+"?"+u.RawQuery)
}

// The conditions steps wait for, run in the page. Each returns {ok, detail, fatal}: detail
// says what was seen instead, fatal stops the wait (a selector the browser rejects).
const (
	queryJS = `function q(sel) {
  try { return {el: document.querySelector(sel)}; }
  catch (e) { return {fatal: "bad CSS selector " + JSON.stringify(sel) + ": " + e.message}; }
}`
	visibleJS = `function(sel) {
  ` + queryJS + `
  const r = q(sel);
  if (r.fatal) return {fatal: r.fatal};
  if (!r.el) return {detail: "no element matches " + JSON.stringify(sel)};
  const box = r.el.getBoundingClientRect(), st = getComputedStyle(r.el);
  if (box.width === 0 || box.height === 0 || st.visibility === "hidden" || st.display === "none")
    return {detail: "the element " + JSON.stringify(sel) + " is not visible"};
  return {ok: true};
}`
	textJS = `function(sel, text) {
  ` + queryJS + `
  let el = document.body;
  if (sel) {
    const r = q(sel);
    if (r.fatal) return {fatal: r.fatal};
    if (!r.el) return {detail: "no element matches " + JSON.stringify(sel)};
    el = r.el;
  }
  const got = el ? (el.innerText || el.textContent || "") : "";
  if (got.includes(text)) return {ok: true};
  const shown = got.length > 300 ? got.slice(0, 300) + "..." : got;
  return {detail: "text " + JSON.stringify(text) + " not found" + (sel ? " in " + JSON.stringify(sel) : " on the page") + "; it shows " + JSON.stringify(shown)};
}`
	selectJS = `function(sel, value, label) {
  ` + queryJS + `
  const r = q(sel);
  if (r.fatal) return {fatal: r.fatal};
  if (!r.el) return {detail: "no element matches " + JSON.stringify(sel)};
  if (r.el.tagName !== "SELECT") return {fatal: JSON.stringify(sel) + " is a <" + r.el.tagName.toLowerCase() + ">, not a <select>"};
  const opts = Array.from(r.el.options);
  const o = opts.find(o => label ? o.label === label : o.value === value);
  if (!o) return {detail: "no option " + (label ? "labelled " + JSON.stringify(label) : "with value " + JSON.stringify(value)) + "; options: " + JSON.stringify(opts.map(o => o.value))};
  r.el.value = o.value;
  r.el.dispatchEvent(new Event("input", {bubbles: true}));
  r.el.dispatchEvent(new Event("change", {bubbles: true}));
  return {ok: true};
}`
)

// namedKeys are the key names press accepts besides single characters.
var namedKeys = map[string]string{
	"Enter": kb.Enter, "Tab": kb.Tab, "Escape": kb.Escape, "Backspace": kb.Backspace,
	"Delete": kb.Delete, "ArrowUp": kb.ArrowUp, "ArrowDown": kb.ArrowDown,
	"ArrowLeft": kb.ArrowLeft, "ArrowRight": kb.ArrowRight, "Home": kb.Home, "End": kb.End,
	"PageUp": kb.PageUp, "PageDown": kb.PageDown, "Space": " ",
}

func keyName(k string) (string, bool) {
	if v, ok := namedKeys[k]; ok {
		return v, true
	}
	if len([]rune(k)) == 1 {
		return k, true
	}
	return "", false
}

func keyNames() string {
	return "Enter, Tab, Escape, Backspace, Delete, ArrowUp, ArrowDown, ArrowLeft, ArrowRight, Home, End, PageUp, PageDown, Space"
}
