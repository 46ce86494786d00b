package coordinator

import (
	"compress/gzip"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-ci/sluice/internal/bus"
	"github.com/sluice-ci/sluice/internal/bus/bustest"
	sluicev1 "github.com/sluice-ci/sluice/proto/sluice/v1"
)

// otlpReceiver is an OTLP/HTTP trace receiver in the test process: it keeps every span it is
// sent, as a collector would.
type otlpReceiver struct {
	mu    sync.Mutex
	spans []*tracepb.Span
}

func (r *otlpReceiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	var body io.Reader = req.Body
	if req.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(req.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		body = zr
	}
	data, err := io.ReadAll(body)
	var export collectortrace.ExportTraceServiceRequest
	if err != nil || req.URL.Path != "/v1/traces" || proto.Unmarshal(data, &export) != nil {
		http.Error(w, "not an OTLP trace export", http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	for _, rs := range export.GetResourceSpans() {
		for _, ss := range rs.GetScopeSpans() {
			r.spans = append(r.spans, ss.GetSpans()...)
		}
	}
	r.mu.Unlock()
	out, _ := proto.Marshal(&collectortrace.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(out)
}

func (r *otlpReceiver) byName() map[string][]*tracepb.Span {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string][]*tracepb.Span{}
	for _, s := range r.spans {
		out[s.GetName()] = append(out[s.GetName()], s)
	}
	return out
}

// A run is one trace exported over OTLP/HTTP: the run's span at the root, a span per stage
// attempt under it (a failed attempt marked an error), a span per task under its attempt
// (rollout actions named by what they do), and each task's traceparent, which its steps
// get as TRACEPARENT, names the task's own span.
func TestTracesARunAsOneSpanTree(t *testing.T) {
	recv := &otlpReceiver{}
	srv := httptest.NewServer(recv)
	defer srv.Close()
	exp, err := otlptracehttp.New(t.Context(), otlptracehttp.WithEndpointURL(srv.URL+"/v1/traces"))
	if err != nil {
		t.Fatal(err)
	}
	tp := NewTracerProvider(sdktrace.WithSyncer(exp))
	defer func() { _ = tp.Shutdown(t.Context()) }()

	env := bustest.Start(t, bus.Config{})
	startCoordinator(t, env, func(c *Config) { c.TracerProvider = tp })
	var mu sync.Mutex
	traceparents := map[string]string{} // task lease id -> traceparent it carried
	got := func(task *sluicev1.Task) {
		mu.Lock()
		traceparents[bus.LeaseID(task.GetRunId(), task.GetStage(), task.GetAttempt(), task.GetShardIndex(), task.GetRollout().GetSeq())] = task.GetTraceparent()
		mu.Unlock()
	}
	startWorker(t, env, func(task *sluicev1.Task) *sluicev1.Result {
		got(task)
		if task.GetStage() == "b" && task.GetAttempt() == 1 {
			return &sluicev1.Result{Outcome: sluicev1.Outcome_OUTCOME_FAILED, Worker: "scripted", Delivery: 1}
		}
		return pass(task)
	})
	startKindWorker(t, env, sluicev1.StageKind_STAGE_KIND_TRAFFIC_SHIFT, func(task *sluicev1.Task) *sluicev1.Result {
		got(task)
		r := &sluicev1.Result{Outcome: sluicev1.Outcome_OUTCOME_PASSED, Worker: "ts"}
		if task.GetRollout().GetAction() == sluicev1.RolloutAction_ROLLOUT_ACTION_ANALYSE {
			r.Verdict = healthy()
		}
		return r
	})
	b := stage("b", "a")
	b.Retries = 1
	production := rolloutStage()
	production.Needs = []string{"b"}
	st := submit(t, env, "main", stage("a"), b, production)
	final := waitRun(t, env, st.GetId(), sluicev1.RunStatus_RUN_STATUS_PASSED)
	waitFor(t, "the run's span", func() bool { return len(recv.byName()["run web"]) == 1 })

	spans := recv.byName()
	one := func(name string) *tracepb.Span {
		t.Helper()
		if len(spans[name]) != 1 {
			var names []string
			for n := range spans {
				names = append(names, n)
			}
			slices.Sort(names)
			t.Fatalf("%d spans named %q, want 1; spans: %s", len(spans[name]), name, strings.Join(names, ", "))
		}
		return spans[name][0]
	}
	root := one("run web")
	traceID := root.GetTraceId()
	if len(root.GetParentSpanId()) != 0 {
		t.Errorf("the run's span has a parent %x; it is the root of a trace Sluice started", root.GetParentSpanId())
	}
	if want := parseTraceparent(final.GetTraceparent()).TraceID(); hex.EncodeToString(traceID) != want.String() {
		t.Errorf("trace %x, want the run's %s", traceID, want)
	}
	under := func(child, parent *tracepb.Span) {
		t.Helper()
		if string(child.GetTraceId()) != string(traceID) || string(child.GetParentSpanId()) != string(parent.GetSpanId()) {
			t.Errorf("span %q: trace %x parent %x, want under %q (%x)", child.GetName(), child.GetTraceId(), child.GetParentSpanId(), parent.GetName(), parent.GetSpanId())
		}
		if child.GetStartTimeUnixNano() < parent.GetStartTimeUnixNano() || child.GetEndTimeUnixNano() > parent.GetEndTimeUnixNano() {
			t.Errorf("span %q is not within %q", child.GetName(), parent.GetName())
		}
	}
	attempts := map[string]*tracepb.Span{}
	for _, name := range []string{"a #1", "b #1", "b #2", "production #1"} {
		attempts[name] = one(name)
		under(attempts[name], root)
	}
	if code := attempts["b #1"].GetStatus().GetCode(); code != tracepb.Status_STATUS_CODE_ERROR {
		t.Errorf("the failed attempt's span has status %s, want an error", code)
	}
	if code := attempts["b #2"].GetStatus().GetCode(); code == tracepb.Status_STATUS_CODE_ERROR {
		t.Errorf("the passing attempt's span is an error")
	}
	bShards := spans["b shard 1"]
	if len(bShards) != 2 {
		t.Fatalf("%d spans of b's shard, want one per attempt", len(bShards))
	}
	under(one("a shard 1"), attempts["a #1"])
	for _, s := range bShards {
		if string(s.GetParentSpanId()) == string(attempts["b #1"].GetSpanId()) {
			under(s, attempts["b #1"])
		} else {
			under(s, attempts["b #2"])
		}
	}
	for _, action := range []string{"deploy", "set weight 10", "analyse 10", "set weight 50", "analyse 50", "set weight 100"} {
		under(one("production: "+action), attempts["production #1"])
	}

	// Each task named its own span to its worker.
	mu.Lock()
	defer mu.Unlock()
	spanIDs := map[string]bool{}
	for _, list := range spans {
		for _, s := range list {
			spanIDs[fmt.Sprintf("00-%x-%x-01", s.GetTraceId(), s.GetSpanId())] = true
		}
	}
	if len(traceparents) < 9 {
		t.Fatalf("%d tasks seen, want every shard and rollout action", len(traceparents))
	}
	for task, tp := range traceparents {
		if !spanIDs[tp] {
			t.Errorf("task %s carried traceparent %s, which names no span of the run", task, tp)
		}
	}
}

// A run's trace says it is recorded only when it is: a step's SDK follows the flag, and a
// sampled traceparent costs the server a header parse on every message that carries it. A
// caller's context passes unchanged, its flags with it.
func TestARunsTraceIsSampledOnlyWhenRecorded(t *testing.T) {
	const callers = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"
	tests := []struct {
		name      string
		callers   string
		recording bool
		want      func(string) bool
	}{
		{"no provider", "", false, func(tp string) bool { return strings.HasSuffix(tp, "-00") }},
		{"a provider", "", true, func(tp string) bool { return strings.HasSuffix(tp, "-01") }},
		{"the caller's, recorded or not", callers, true, func(tp string) bool { return tp == callers }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tp := runTraceparent(tc.callers, "r1", tc.recording)
			if !parseTraceparent(tp).IsValid() || !tc.want(tp) {
				t.Errorf("runTraceparent = %q", tp)
			}
		})
	}
}

// TestTraceparentIsWrittenAsOpenTelemetryWritesIt: the coordinator writes traceparents
// itself (every event and task carries one); each must be what OpenTelemetry's propagator
// writes for the same span context, sampled or not.
func TestTraceparentIsWrittenAsOpenTelemetryWritesIt(t *testing.T) {
	for i, flags := range []trace.TraceFlags{0, trace.FlagsSampled, trace.FlagsSampled, 0} {
		sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: randomTraceID(), SpanID: randomSpanID(), TraceFlags: flags})
		carrier := propagation.MapCarrier{}
		propagation.TraceContext{}.Inject(trace.ContextWithSpanContext(context.Background(), sc), carrier)
		if got, want := formatTraceparent(sc), carrier.Get("traceparent"); got != want {
			t.Errorf("%d: formatTraceparent = %q, OpenTelemetry writes %q", i, got, want)
		}
		if back := parseTraceparent(formatTraceparent(sc)); !back.Equal(sc.WithRemote(true)) {
			t.Errorf("%d: %q reads back as %v, want %v", i, formatTraceparent(sc), back, sc)
		}
	}
}
