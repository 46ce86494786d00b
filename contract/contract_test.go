package contract_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluice-ci/sluice/contract"
	"github.com/sluice-ci/sluice/examples/app"
	"github.com/sluice-ci/sluice/internal/golden"
)

const exampleContracts = "../examples/app/contracts"

func loadExample(t *testing.T) []*contract.Contract {
	t.Helper()
	cs, err := contract.LoadFiles(exampleContracts, []string{"*.yaml"})
	if err != nil {
		t.Fatalf("load the example contracts: %v", err)
	}
	return cs
}

func TestExampleContractsPass(t *testing.T) {
	srv := httptest.NewServer(app.NewHandler("v1"))
	defer srv.Close()
	cs := loadExample(t)
	if len(cs) != 3 {
		t.Fatalf("%d example contracts, want 3", len(cs))
	}
	rep := (&contract.Runner{Target: srv.URL}).Run(t.Context(), cs)
	var text bytes.Buffer
	if err := rep.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	if !rep.Passed() {
		t.Fatalf("the example contracts fail against the example app:\n%s", text.String())
	}
	if _, _, sp, _, _ := rep.Counts(); sp != 7 {
		t.Errorf("%d steps passed, want 7:\n%s", sp, text.String())
	}
}

// drifted serves the example app with its JSON responses rewritten by edit: the kinds of
// drift a generated change introduces.
func drifted(edit func(path string, body map[string]any)) http.Handler {
	inner := app.NewHandler("drifted")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := httptest.NewRecorder()
		inner.ServeHTTP(rec, r)
		var body map[string]any
		out := rec.Body.Bytes()
		if json.Unmarshal(out, &body) == nil {
			edit(r.Method+" "+r.URL.Path, body)
			out, _ = json.Marshal(body)
		}
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(out)
	})
}

func TestDriftFails(t *testing.T) {
	onCreate := func(f func(map[string]any)) func(string, map[string]any) {
		return func(path string, body map[string]any) {
			if path == "POST /api/payments" {
				f(body)
			}
		}
	}
	tests := []struct {
		name string
		edit func(string, map[string]any)
		// want are lines the report must hold: the field and what came back.
		want []string
	}{
		{"renamed field", onCreate(func(b map[string]any) { b["currency_code"] = b["currency"]; delete(b, "currency") }),
			[]string{"body.currency", "want: equal to the request's currency (\"USD\")", "(missing; the object has fields amount, created_at, currency_code, description, id, status)"}},
		{"wrong status", onCreate(func(b map[string]any) { b["status"] = "ok" }),
			[]string{"body.status", `want: one of "succeeded", "pending", "failed"`, `got:  "ok"`}},
		{"id without its prefix", onCreate(func(b map[string]any) { b["id"] = strings.TrimPrefix(b["id"].(string), "pay_") }),
			[]string{"body.id", "want: a string matching ^pay_"}},
		{"missing capture", onCreate(func(b map[string]any) { delete(b, "id") }),
			[]string{"capture payment_id", "want: a value at body.id", "skip 2 read it back"}},
		{"wrong amount type", onCreate(func(b map[string]any) { b["amount"] = "1250" }),
			[]string{"body.amount", `got:  "1250"`, "schemas/payment.json at /properties/amount/type"}},
	}
	var cs []*contract.Contract
	for _, c := range loadExample(t) {
		if c.Name == "payments API" {
			cs = append(cs, c)
		}
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(drifted(tt.edit))
			defer srv.Close()
			rep := (&contract.Runner{Target: srv.URL}).Run(t.Context(), cs)
			var text bytes.Buffer
			if err := rep.WriteText(&text); err != nil {
				t.Fatal(err)
			}
			if rep.Passed() {
				t.Fatalf("drift %q passed:\n%s", tt.name, text.String())
			}
			for _, w := range tt.want {
				if !strings.Contains(text.String(), w) {
					t.Errorf("report lacks %q:\n%s", w, text.String())
				}
			}
		})
	}
}

// fixedDrift is a server whose answers never change, for the golden files.
func fixedDrift() http.Handler {
	mux := http.NewServeMux()
	reply := func(status int, body string) http.HandlerFunc {
		return func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			_, _ = io.WriteString(w, body)
		}
	}
	mux.Handle("POST /api/payments", reply(200, `{"id":"txn_0001","status":"ok","amount":"1250","currency_code":"USD","created_at":"yesterday"}`))
	mux.Handle("GET /healthz", reply(200, `{"status":"ok","build":{}}`))
	mux.Handle("GET /api/payments", reply(200, `{"payments":[]}`))
	return mux
}

func TestGolden(t *testing.T) {
	srv := httptest.NewServer(fixedDrift())
	defer srv.Close()
	cs, err := contract.LoadFiles("testdata", []string{"drift.yaml"})
	if err != nil {
		t.Fatal(err)
	}
	rep := (&contract.Runner{Target: srv.URL}).Run(t.Context(), cs)
	// Times and the server's port change between runs.
	rep.Elapsed = 0
	for _, c := range rep.Contracts {
		c.Elapsed = 0
		for _, s := range c.Steps {
			s.Elapsed = 0
		}
	}
	rep.Target = "http://127.0.0.1:PORT"
	for _, f := range []struct {
		golden string
		write  func(io.Writer) error
	}{
		{"drift.txt", rep.WriteText},
		{"drift.junit.xml", rep.WriteJUnit},
	} {
		var got bytes.Buffer
		if err := f.write(&got); err != nil {
			t.Fatal(err)
		}
		golden.Check(t, filepath.Join("testdata", f.golden), got.Bytes())
	}
	want := `2 of 3 contracts failed: drifted payments, step "create a payment": status: want 201 Created, got 200 OK (and 8 more); ` +
		`drifted health, step "missing capture": capture build: want a value at body.build.sha, got (missing; the object has no fields)`
	if got := rep.Summary(); got != want {
		t.Errorf("Summary:\n%s\nwant:\n%s", got, want)
	}
}

func TestTransportFailures(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := "http://" + l.Addr().String()
	l.Close()

	// hang answers nothing until the client gives up.
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }))
	defer hang.Close()

	cs, err := contract.Parse("t.yaml", "t.yaml", []byte(`
name: one request
timeout: 200ms
steps:
  - {name: ping, request: {path: /healthz}}
  - {name: after, request: {path: /healthz}}
`))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		target   string
		wantKind string
		wantMsg  string
	}{
		{refused, contract.FailConnection, "connection refused"},
		{hang.URL, contract.FailTimeout, "no response within 200ms"},
	}
	for _, tt := range tests {
		rep := (&contract.Runner{Target: tt.target}).Run(t.Context(), cs)
		step := rep.Contracts[0].Steps[0]
		if step.Status != contract.StepFailed || step.Kind != tt.wantKind || step.Err == nil || !strings.Contains(step.Err.Error(), tt.wantMsg) {
			t.Errorf("against %s: status %v kind %q err %v; want a %s failure saying %q", tt.target, step.Status, step.Kind, step.Err, tt.wantKind, tt.wantMsg)
		}
		if rep.Contracts[0].Steps[1].Status != contract.StepSkipped {
			t.Errorf("against %s: the step after a failed one was not skipped", tt.target)
		}
		var junit bytes.Buffer
		if err := rep.WriteJUnit(&junit); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(junit.String(), `type="`+tt.wantKind+`"`) {
			t.Errorf("JUnit lacks the failure type %s:\n%s", tt.wantKind, junit.String())
		}
	}
}

func TestCancelled(t *testing.T) {
	srv := httptest.NewServer(app.NewHandler("v1"))
	defer srv.Close()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	rep := (&contract.Runner{Target: srv.URL}).Run(ctx, loadExample(t))
	if rep.Passed() {
		t.Error("contracts passed under a cancelled context")
	}
}

func TestVariables(t *testing.T) {
	var gotPath, gotHeader string
	var gotBody map[string]any
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotPath, gotHeader = r.URL.Path, r.Header.Get("X-Token")
		_ = json.NewDecoder(r.Body).Decode(&gotBody)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"n": 7, "items": [{"name": "a"}, {"name": "b"}]}`)
	}))
	defer srv.Close()
	cs, err := contract.Parse("vars.yaml", "vars.yaml", []byte(`
name: variables
vars: {TOKEN: from-file, WHO: file}
steps:
  - name: first
    request: {path: /first}
    capture: {n: n, second: "items[1].name"}
    expect:
      body:
        "$.items.0.name": a
  - name: second
    request:
      method: PUT
      path: /things/${second}/${n}
      headers: {X-Token: "${TOKEN}"}
      json: {n: "${n}", label: "n=${n} by ${WHO}", literal: "$${n}"}
  - name: undefined
    request: {path: "/x/${nope}"}
`))
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"WHO": "env"}
	r := &contract.Runner{Target: srv.URL, Lookup: func(k string) (string, bool) { v, ok := env[k]; return v, ok }}
	rep := r.Run(t.Context(), cs)
	steps := rep.Contracts[0].Steps
	if steps[0].Status != contract.StepPassed || steps[1].Status != contract.StepPassed {
		var text bytes.Buffer
		_ = rep.WriteText(&text)
		t.Fatalf("steps failed:\n%s", text.String())
	}
	if gotPath != "/x/${nope}" && steps[2].Kind != contract.FailSetup {
		t.Errorf("undefined variable: kind %q, err %v; want a setup failure", steps[2].Kind, steps[2].Err)
	}
	if steps[2].Err == nil || !strings.Contains(steps[2].Err.Error(), "undefined variable ${nope}") {
		t.Errorf("undefined variable error: %v", steps[2].Err)
	}
	want := map[string]any{"n": 7.0, "label": "n=7 by env", "literal": "${n}"}
	if gotHeader != "from-file" || gotBody["n"] != want["n"] || gotBody["label"] != want["label"] || gotBody["literal"] != want["literal"] {
		t.Errorf("second request: header %q body %v; want from-file and %v", gotHeader, gotBody, want)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name, yaml, want string
	}{
		{"unknown field", "name: x\nsteps:\n  - request: {path: /}\n    expct: {status: 200}\n", `t.yaml:4:5: steps[0].expct: unknown field "expct" in step (did you mean "expect"?)`},
		{"no name", "steps:\n  - request: {path: /}\n", "t.yaml:1:1: name: missing: a contract needs a name"},
		{"no steps", "name: x\n", `t.yaml:1:1: steps: no steps: contract "x" needs at least one request`},
		{"relative path", "name: x\nsteps:\n  - request: {path: api}\n", `t.yaml:3:21: steps[0].request.path: "api" must start with /`},
		{"bad method", "name: x\nsteps:\n  - request: {method: FETCH, path: /}\n", `t.yaml:3:23: steps[0].request.method: "FETCH" is not one of`},
		{"bad regex", "name: x\nsteps:\n  - request: {path: /}\n    expect: {body: {id: {regex: \"(\"}}}\n", "t.yaml:4:33: steps[0].expect.body.id.regex: error parsing regexp"},
		{"bad type", "name: x\nsteps:\n  - request: {path: /}\n    expect: {body: {id: {type: text}}}\n", `t.yaml:4:32: steps[0].expect.body.id.type: "text" is not allowed: use one of string, number,`},
		{"bad status", "name: x\nsteps:\n  - request: {path: /}\n    expect: {status: 2000}\n", "t.yaml:4:22: steps[0].expect.status: 2000 is out of range: must be 100..599"},
		{"bad status in a list", "name: x\nsteps:\n  - request: {path: /}\n    expect: {status: [200, ok]}\n", `t.yaml:4:28: steps[0].expect.status[1]: "ok" is not a whole number`},
		{"equals_request without json", "name: x\nsteps:\n  - request: {path: /}\n    expect:\n      body:\n        id: {equals_request: id}\n", "t.yaml:6:9: steps[0].expect.body.id: equals_request needs a request with a json body"},
		{"bad schema", "name: x\nsteps:\n  - request: {path: /}\n    expect: {schema: {type: 12}}\n", "t.yaml:4:22: steps[0].expect.schema: "},
		{"missing schema file", "name: x\nsteps:\n  - request: {path: /}\n    expect: {schema_file: nope.json}\n", "t.yaml:4:27: steps[0].expect.schema_file: "},
		{"bad capture", "name: x\nsteps:\n  - request: {path: /}\n    capture: {1x: id}\n", `t.yaml:4:15: steps[0].capture.1x: "1x" is not a variable name`},
		{"absent with checks", "name: x\nsteps:\n  - request: {path: /}\n    expect: {body: {id: {present: false, type: string}}}\n", "t.yaml:4:25: steps[0].expect.body.id: present: false cannot be combined"},
		{"not yaml", "name: [x\n", "t.yaml:1: invalid YAML: "},
		{"bad timeout", "name: x\ntimeout: soon\nsteps:\n  - request: {path: /}\n", `t.yaml:2:10: timeout: invalid duration "soon"`},
		{"empty file", "# nothing yet\n", "t.yaml:1:1: empty contract file: it needs name and steps"},
		{"a list", "- name: x\n", "t.yaml:1:1: each document of a contract file is a mapping with name and steps, got a list"},
	}
	dir := t.TempDir()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := contract.Parse("t.yaml", filepath.Join(dir, "t.yaml"), []byte(tt.yaml))
			if !errors.Is(err, contract.ErrInvalid) || len(contract.Problems(err)) != 1 || !strings.HasPrefix(err.Error(), tt.want) {
				t.Errorf("Parse: %v\nwant one problem wrapping ErrInvalid, starting with %q", err, tt.want)
			}
		})
	}
}

// Every problem of every file is reported at once, each with its file and position.
func TestLoadFilesReportsEveryProblem(t *testing.T) {
	dir := t.TempDir()
	writeContract(t, dir, "a.yaml", "name: a\nsteps:\n  - request: {path: x}\n    expect: {status: 9}\n")
	writeContract(t, dir, "b.yaml", "name: b\nsteps:\n  - request: {path: /}\n---\nname: c\nstep: []\n")
	_, err := contract.LoadFiles(dir, []string{"*.yaml"})
	var got []string
	for _, p := range contract.Problems(err) {
		got = append(got, fmt.Sprintf("%s:%d:%s", p.File, p.Line, p.Field))
	}
	want := []string{"a.yaml:3:steps[0].request.path", "a.yaml:4:steps[0].expect.status", "b.yaml:5:steps", "b.yaml:6:step"}
	if !slices.Equal(got, want) {
		t.Fatalf("problems %v, want %v:\n%v", got, want, err)
	}
}

func writeContract(t *testing.T, dir, name, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestLoadFilesErrors(t *testing.T) {
	tests := []struct {
		dir      string
		patterns []string
		want     string
	}{
		{exampleContracts, []string{"nothing-*.yaml"}, `"nothing-*.yaml" matches no file`},
		{exampleContracts, []string{"../*.go"}, "leaves the source tree"},
		{exampleContracts, nil, "no contract files"},
	}
	for _, tt := range tests {
		_, err := contract.LoadFiles(tt.dir, tt.patterns)
		if !errors.Is(err, contract.ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("LoadFiles(%v): %v, want %q", tt.patterns, err, tt.want)
		}
	}
}

func TestRunnerTimeoutDefault(t *testing.T) {
	if contract.DefaultTimeout != 10*time.Second {
		t.Errorf("DefaultTimeout %s: the documentation says 10s", contract.DefaultTimeout)
	}
}
