package contract

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"mime"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// maxBody bounds how much of a response the engine reads.
const maxBody = 4 << 20

// Runner runs contracts against a target.
type Runner struct {
	// Target is the base URL the steps' paths are relative to.
	Target string
	// Client sends the requests; nil: a client that does not follow redirects, so a
	// contract can pin a 303 and its Location.
	Client *http.Client
	// Lookup resolves ${VAR} references that no capture and no contract var defines
	// (the environment, --set values); nil: none.
	Lookup func(string) (string, bool)
	// Timeout bounds each request of contracts that set none; 0: DefaultTimeout.
	Timeout time.Duration
}

// StepStatus is a step's verdict.
type StepStatus int

const (
	StepPassed StepStatus = iota
	StepFailed
	StepSkipped
)

// Failure kinds of a failed step, the JUnit failure type.
const (
	FailMismatch   = "mismatch"   // the response did not meet the expectations
	FailTimeout    = "timeout"    // no response within the timeout
	FailConnection = "connection" // the request could not be sent or answered
	FailSetup      = "setup"      // the request could not be built (undefined variable)
)

// StepResult is what one step did.
type StepResult struct {
	Step   *Step
	Status StepStatus
	// Kind is one of the Fail* kinds when Status is StepFailed.
	Kind       string
	Method     string
	Path       string // after substitution
	StatusCode int    // 0 when no response came
	Body       []byte // the response body, up to maxBody
	BodyType   string // the response's Content-Type
	Mismatches []Mismatch
	// Err is the cause of a timeout, connection or setup failure.
	Err     error
	Elapsed time.Duration
}

// ContractResult is one contract's outcome.
type ContractResult struct {
	Contract *Contract
	Steps    []*StepResult
	Elapsed  time.Duration
}

// Passed reports whether every step passed.
func (c *ContractResult) Passed() bool {
	for _, s := range c.Steps {
		if s.Status != StepPassed {
			return false
		}
	}
	return true
}

// Report is the outcome of a set of contracts against one target.
type Report struct {
	Target    string
	Contracts []*ContractResult
	Elapsed   time.Duration
}

// Passed reports whether every contract passed.
func (r *Report) Passed() bool {
	for _, c := range r.Contracts {
		if !c.Passed() {
			return false
		}
	}
	return true
}

// Counts returns the number of contracts that passed and failed, and of steps that passed,
// failed and were skipped.
func (r *Report) Counts() (passed, failed, stepsPassed, stepsFailed, stepsSkipped int) {
	for _, c := range r.Contracts {
		if c.Passed() {
			passed++
		} else {
			failed++
		}
		for _, s := range c.Steps {
			switch s.Status {
			case StepPassed:
				stepsPassed++
			case StepFailed:
				stepsFailed++
			case StepSkipped:
				stepsSkipped++
			}
		}
	}
	return passed, failed, stepsPassed, stepsFailed, stepsSkipped
}

// Run runs each contract in order. A contract stops at its first failed step; the rest of
// its steps are skipped, since they build on what failed. A cancelled ctx fails the step
// in flight and skips the rest.
func (r *Runner) Run(ctx context.Context, contracts []*Contract) *Report {
	start := time.Now()
	rep := &Report{Target: r.Target}
	for _, c := range contracts {
		rep.Contracts = append(rep.Contracts, r.runContract(ctx, c))
	}
	rep.Elapsed = time.Since(start)
	return rep
}

func (r *Runner) client() *http.Client {
	if r.Client != nil {
		return r.Client
	}
	return &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func (r *Runner) runContract(ctx context.Context, c *Contract) *ContractResult {
	start := time.Now()
	res := &ContractResult{Contract: c}
	captures := map[string]any{}
	lookup := func(name string) (any, bool) {
		if v, ok := captures[name]; ok {
			return v, true
		}
		if r.Lookup != nil {
			if v, ok := r.Lookup(name); ok {
				return v, true
			}
		}
		v, ok := c.Vars[name]
		return v, ok
	}
	timeout := c.Timeout
	if timeout == 0 {
		timeout = r.Timeout
	}
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	failed := false
	for _, s := range c.Steps {
		if failed || ctx.Err() != nil {
			res.Steps = append(res.Steps, &StepResult{Step: s, Status: StepSkipped, Method: s.Request.Method, Path: s.Request.Path})
			continue
		}
		sr := r.runStep(ctx, s, lookup, captures, timeout)
		res.Steps = append(res.Steps, sr)
		failed = sr.Status == StepFailed
	}
	res.Elapsed = time.Since(start)
	return res
}

func (r *Runner) runStep(ctx context.Context, s *Step, lookup func(string) (any, bool), captures map[string]any, timeout time.Duration) *StepResult {
	start := time.Now()
	sr := &StepResult{Step: s, Method: s.Request.Method, Path: s.Request.Path}
	defer func() { sr.Elapsed = time.Since(start) }()
	fail := func(kind string, err error) *StepResult {
		sr.Status, sr.Kind, sr.Err = StepFailed, kind, err
		return sr
	}

	req, reqJSON, err := r.buildRequest(ctx, s, lookup, sr)
	if err != nil {
		return fail(FailSetup, err)
	}
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	resp, err := r.client().Do(req.WithContext(rctx))
	if err != nil {
		return fail(transportKind(err), describeTransport(err, timeout))
	}
	defer resp.Body.Close()
	sr.StatusCode, sr.BodyType = resp.StatusCode, resp.Header.Get("Content-Type")
	sr.Body, err = io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return fail(transportKind(err), fmt.Errorf("read the response body of %s %s: %w", sr.Method, sr.Path, describeTransport(err, timeout)))
	}

	sr.Mismatches = r.checkResponse(s, resp, sr.Body, reqJSON, lookup, captures)
	if len(sr.Mismatches) > 0 {
		return fail(FailMismatch, nil)
	}
	return sr
}

// buildRequest substitutes the step's variables and builds its HTTP request; it also
// returns the JSON body sent, for equals_request.
func (r *Runner) buildRequest(ctx context.Context, s *Step, lookup func(string) (any, bool), sr *StepResult) (*http.Request, any, error) {
	path, err := substitute(s.Request.Path, lookup)
	if err != nil {
		return nil, nil, fmt.Errorf("request path: %w", err)
	}
	sr.Path = path
	base, err := url.Parse(strings.TrimSuffix(r.Target, "/"))
	if err != nil || base.Host == "" {
		return nil, nil, fmt.Errorf("target %q is not an absolute URL", r.Target)
	}
	u, err := url.Parse(base.String() + path)
	if err != nil {
		return nil, nil, fmt.Errorf("request path %q: %w", path, err)
	}
	var body io.Reader
	var reqJSON any
	contentType := ""
	switch {
	case s.Request.HasJSON:
		if reqJSON, err = substituteJSON(s.Request.JSON, lookup); err != nil {
			return nil, nil, fmt.Errorf("request json: %w", err)
		}
		b, err := json.Marshal(reqJSON)
		if err != nil {
			return nil, nil, fmt.Errorf("request json: %w", err)
		}
		body, contentType = bytes.NewReader(b), "application/json"
	case s.Request.Body != "":
		b, err := substitute(s.Request.Body, lookup)
		if err != nil {
			return nil, nil, fmt.Errorf("request body: %w", err)
		}
		body = strings.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, s.Request.Method, u.String(), body)
	if err != nil {
		return nil, nil, fmt.Errorf("build the request: %w", err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for _, k := range slices.Sorted(maps.Keys(s.Request.Headers)) {
		v, err := substitute(s.Request.Headers[k], lookup)
		if err != nil {
			return nil, nil, fmt.Errorf("request header %s: %w", k, err)
		}
		req.Header.Set(k, v)
	}
	return req, reqJSON, nil
}

// checkResponse compares a response with the step's expectations and, when they hold,
// stores its captures. Mismatches come in the order status, headers, body matchers,
// schema, captures: the matchers' messages read best, so they lead.
func (r *Runner) checkResponse(s *Step, resp *http.Response, body []byte, reqJSON any, lookup func(string) (any, bool), captures map[string]any) []Mismatch {
	var out []Mismatch
	e := &s.Expect
	switch {
	case len(e.Status) == 0 && (resp.StatusCode < 200 || resp.StatusCode > 299):
		out = append(out, Mismatch{Field: "status", Want: "a 2xx status", Got: resp.Status})
	case len(e.Status) > 0 && !slices.Contains(e.Status, resp.StatusCode):
		want := make([]string, len(e.Status))
		for i, c := range e.Status {
			want[i] = fmt.Sprintf("%d %s", c, http.StatusText(c))
		}
		out = append(out, Mismatch{Field: "status", Want: strings.Join(want, " or "), Got: resp.Status})
	}
	for _, h := range e.Headers {
		vals, present := resp.Header[http.CanonicalHeaderKey(h.Path)]
		var v any
		if present {
			v = strings.Join(vals, ", ")
		}
		if m := r.checkField("header "+h.Path, &h.Matcher, v, present, "", reqJSON, lookup); m != nil {
			out = append(out, *m)
		}
	}
	needsJSON := e.Schema != nil || len(e.Body) > 0 || len(s.Capture) > 0
	if !needsJSON {
		return out
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
	if err != nil {
		mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
		if mt == "" {
			mt = "no Content-Type"
		}
		return append(out, Mismatch{Field: "body", Want: "a JSON document", Got: fmt.Sprintf("%s: %s", mt, shorten(strings.TrimSpace(string(body)), 120))})
	}
	for _, f := range e.Body {
		v, present, where := lookupPath(doc, f.Path)
		if m := r.checkField(fieldName(f.Path), &f.Matcher, v, present, where, reqJSON, lookup); m != nil {
			out = append(out, *m)
		}
	}
	if e.Schema != nil {
		if err := e.Schema.Validate(doc); err != nil {
			out = append(out, schemaMismatches(err, e.SchemaSource)...)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(s.Capture)) {
		v, ok, where := lookupPath(doc, s.Capture[name])
		if !ok {
			out = append(out, Mismatch{Field: "capture " + name, Want: "a value at " + fieldName(s.Capture[name]), Got: "(missing; " + where + ")"})
			continue
		}
		captures[name] = v
	}
	return out
}

func fieldName(path string) string {
	p := strings.TrimPrefix(strings.TrimPrefix(path, "$"), ".")
	if p == "" {
		return "body"
	}
	if strings.HasPrefix(p, "[") {
		return "body" + p
	}
	return "body." + p
}

// checkField resolves a matcher's expected values and applies it.
func (r *Runner) checkField(field string, m *Matcher, v any, present bool, where string, reqJSON any, lookup func(string) (any, bool)) *Mismatch {
	var want any
	if m.HasEquals {
		var err error
		if want, err = substituteJSON(m.Equals, lookup); err != nil {
			return &Mismatch{Field: field, Want: "equals " + render(m.Equals), Got: "(cannot check: " + err.Error() + ")"}
		}
	}
	var wantReq any
	hasReq := false
	if m.EqualsRequest != "" {
		wantReq, hasReq, _ = lookupPath(reqJSON, m.EqualsRequest)
	}
	expected, ok := m.check(v, present, want, wantReq, hasReq)
	if ok {
		return nil
	}
	got := render(v)
	if !present {
		got = "(missing)"
		if where != "" {
			got = "(missing; " + where + ")"
		}
	}
	return &Mismatch{Field: field, Want: expected, Got: got}
}

func transportKind(err error) string {
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		return FailTimeout
	}
	return FailConnection
}

// describeTransport says why a request got no response in words a reader acts on.
func describeTransport(err error, timeout time.Duration) error {
	switch {
	case transportKind(err) == FailTimeout:
		return fmt.Errorf("no response within %s: %w", timeout, err)
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Errorf("connection refused (is the service running at the target?): %w", err)
	}
	return err
}
