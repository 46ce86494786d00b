package coordinator

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/sluice-ci/sluice/coordinator/decide"
	"github.com/sluice-ci/sluice/internal/bus"
	sluicev1 "github.com/sluice-ci/sluice/proto/sluice/v1"
)

// A run is one trace: the run's span, a span per stage attempt under it, and a span per
// task (a shard, or a rollout action) under its attempt. A run outlives any one coordinator,
// so its spans are recorded when what they cover ends, by the coordinator whose decision
// stored that end, with the times the state holds; their ids are derived from the run, so
// any coordinator names the same parent. A task's traceparent names its own span: what a
// step traces (TRACEPARENT) hangs under it.

// tracerName is the instrumentation scope of the coordinator's spans.
const tracerName = "github.com/sluice-ci/sluice/coordinator"

// NewTracerProvider is an OpenTelemetry SDK provider whose span ids the coordinator chooses
// (see spanIDs); pass it as Config.TracerProvider with the exporter's span processor.
func NewTracerProvider(opts ...sdktrace.TracerProviderOption) *sdktrace.TracerProvider {
	return sdktrace.NewTracerProvider(append(opts, sdktrace.WithIDGenerator(derivedIDs{}))...)
}

// spanIDKey carries the span id (and, for a root, the trace id) a span is to have.
type spanIDKey struct{}

type fixedIDs struct {
	trace trace.TraceID
	span  trace.SpanID
}

// derivedIDs gives a span the ids its context carries (withIDs), random ones otherwise.
type derivedIDs struct{}

func (derivedIDs) NewIDs(ctx context.Context) (trace.TraceID, trace.SpanID) {
	if ids, ok := ctx.Value(spanIDKey{}).(fixedIDs); ok {
		return ids.trace, ids.span
	}
	return randomTraceID(), randomSpanID()
}

func (derivedIDs) NewSpanID(ctx context.Context, _ trace.TraceID) trace.SpanID {
	if ids, ok := ctx.Value(spanIDKey{}).(fixedIDs); ok {
		return ids.span
	}
	return randomSpanID()
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

func randomTraceID() trace.TraceID {
	var t trace.TraceID
	copy(t[:], randomBytes(16))
	return t
}

func randomSpanID() trace.SpanID {
	var s trace.SpanID
	copy(s[:], randomBytes(8))
	return s
}

// spanID derives a span id from what the span covers ("run/<id>", a task's lease id).
func spanID(parts ...string) trace.SpanID {
	sum := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	var s trace.SpanID
	copy(s[:], sum[:8])
	if !s.IsValid() {
		s[7] = 1
	}
	return s
}

func runSpanID(run string) trace.SpanID { return spanID("run", run) }

func attemptSpanID(run, stage string, attempt int32) trace.SpanID {
	return spanID("attempt", run, stage, fmt.Sprint(attempt))
}

func taskSpanID(run, stage string, attempt, shard, seq int32) trace.SpanID {
	return spanID("task", bus.LeaseID(run, stage, attempt, shard, seq))
}

// parseTraceparent reads a W3C traceparent; the zero SpanContext when it is not one.
func parseTraceparent(tp string) trace.SpanContext {
	ctx := propagation.TraceContext{}.Extract(context.Background(), propagation.MapCarrier{"traceparent": tp})
	return trace.SpanContextFromContext(ctx)
}

// formatTraceparent writes sc as a version 00 traceparent: 00-<trace id>-<span id>-<flags>,
// in hex, without fmt (every event and task carries one).
func formatTraceparent(sc trace.SpanContext) string {
	tid, sid := sc.TraceID(), sc.SpanID()
	var b [55]byte
	copy(b[:], "00-")
	hex.Encode(b[3:35], tid[:])
	b[35] = '-'
	hex.Encode(b[36:52], sid[:])
	b[52] = '-'
	hex.Encode(b[53:55], []byte{byte(sc.TraceFlags())})
	return string(b[:])
}

// runTraceparent is a submitted run's trace context: the caller's, when it sent a valid
// one (the run's span is then its child), else a new trace whose parent id is the run's
// own span, which marks the run's span as the root. A new trace is sampled only when this
// coordinator records spans: the flag tells the SDKs of steps whether their parent is
// recorded, and a sampled traceparent makes nats-server parse the headers of every
// message that carries it (to trace it to the account's destination).
func runTraceparent(callers, run string, recording bool) string {
	if sc := parseTraceparent(callers); sc.IsValid() {
		return callers
	}
	var flags trace.TraceFlags
	if recording {
		flags = trace.FlagsSampled
	}
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: randomTraceID(), SpanID: runSpanID(run), TraceFlags: flags})
	return formatTraceparent(sc)
}

// taskTraceparent is the context a task carries to its worker and steps: its own span, in
// the trace of the traceparent it was built with (the run's).
func taskTraceparent(t *sluicev1.Task) string {
	sc := parseTraceparent(t.GetTraceparent())
	if !sc.IsValid() {
		return t.GetTraceparent()
	}
	id := taskSpanID(t.GetRunId(), t.GetStage(), t.GetAttempt(), t.GetShardIndex(), t.GetRollout().GetSeq())
	return formatTraceparent(sc.WithSpanID(id).WithRemote(false))
}

// tracer records a decision's ended work as spans; a no-op without a provider.
type tracer struct{ t trace.Tracer }

// recording reports whether spans are recorded (a provider was given).
func (tr tracer) recording() bool { return tr.t != nil }

func newTracer(tp trace.TracerProvider) tracer {
	if tp == nil {
		return tracer{}
	}
	return tracer{tp.Tracer(tracerName)}
}

// record traces what the decision stored on st ended: tasks, stage attempts, the run.
func (tr tracer) record(st *sluicev1.RunState, d decide.Decision) {
	if tr.t == nil {
		return
	}
	root := parseTraceparent(st.GetTraceparent())
	if !root.IsValid() {
		return
	}
	run := st.GetId()
	for _, f := range d.Finished {
		// Shards are numbered from 1 wherever a user sees them.
		name := fmt.Sprintf("%s shard %d", f.Stage, f.Shard+1)
		if f.Action != "" {
			name = f.Stage + ": " + f.Action
		}
		tr.span(root, attemptSpanID(run, f.Stage, f.Attempt), taskSpanID(run, f.Stage, f.Attempt, f.Shard, f.RolloutSeq),
			name, f.Start, f.End, f.Outcome, "",
			attribute.String("sluice.worker", f.Worker), attribute.Int("sluice.shard", int(f.Shard)+1),
			attribute.Int("sluice.rollout_seq", int(f.RolloutSeq)))
	}
	for _, ev := range d.Emitted {
		switch ev.GetType() {
		case "stage.passed", "stage.failed", "stage.cancelled", "stage.retrying":
			tr.attempt(root, st, ev)
		case "run.passed", "run.failed", "run.cancelled":
			parent := root.SpanID()
			if parent == runSpanID(run) {
				parent = trace.SpanID{}
			}
			end := ev.GetTime().AsTime()
			tr.span(root, parent, runSpanID(run), "run "+st.GetPipeline(), st.GetCreatedAt().AsTime(), end,
				runOutcome(st.GetStatus()), st.GetMessage(),
				attribute.String("sluice.run", run), attribute.String("sluice.pipeline", st.GetPipeline()),
				attribute.String("sluice.ref", st.GetRef()))
		}
	}
}

// attempt traces the stage attempt ev ends: from its dispatch to its end.
func (tr tracer) attempt(root trace.SpanContext, st *sluicev1.RunState, ev *sluicev1.Event) {
	s, spec := stageOf(st, ev.GetStage())
	if s == nil || s.GetQueuedAt() == nil {
		return
	}
	outcome := sluicev1.Outcome_OUTCOME_PASSED
	switch ev.GetType() {
	case "stage.failed", "stage.retrying":
		outcome = sluicev1.Outcome_OUTCOME_FAILED
	case "stage.cancelled":
		outcome = sluicev1.Outcome_OUTCOME_CANCELLED
	}
	run := st.GetId()
	tr.span(root, runSpanID(run), attemptSpanID(run, s.GetName(), ev.GetAttempt()),
		fmt.Sprintf("%s #%d", s.GetName(), ev.GetAttempt()), s.GetQueuedAt().AsTime(), ev.GetTime().AsTime(), outcome, ev.GetMessage(),
		attribute.String("sluice.stage", s.GetName()), attribute.String("sluice.kind", spec.GetKind().Slug()),
		attribute.Int("sluice.attempt", int(ev.GetAttempt())))
}

// span records one ended span with the given ids and times; parent zero: a root.
func (tr tracer) span(root trace.SpanContext, parent, id trace.SpanID, name string, start, end time.Time,
	outcome sluicev1.Outcome, message string, attrs ...attribute.KeyValue) {
	ctx := context.WithValue(context.Background(), spanIDKey{}, fixedIDs{trace: root.TraceID(), span: id})
	if parent.IsValid() {
		ctx = trace.ContextWithRemoteSpanContext(ctx, root.WithSpanID(parent))
	}
	_, sp := tr.t.Start(ctx, name, trace.WithTimestamp(start), trace.WithAttributes(attrs...),
		trace.WithAttributes(attribute.String("sluice.outcome", outcome.Short())))
	if outcome != sluicev1.Outcome_OUTCOME_PASSED {
		sp.SetStatus(codes.Error, message)
	}
	sp.End(trace.WithTimestamp(end))
}

// runSpanTraceparent is the context of the run's own span, which its events carry.
func runSpanTraceparent(st *sluicev1.RunState) string {
	sc := parseTraceparent(st.GetTraceparent())
	if !sc.IsValid() {
		return st.GetTraceparent()
	}
	return formatTraceparent(sc.WithSpanID(runSpanID(st.GetId())).WithRemote(false))
}

func runOutcome(s sluicev1.RunStatus) sluicev1.Outcome {
	switch s {
	case sluicev1.RunStatus_RUN_STATUS_PASSED:
		return sluicev1.Outcome_OUTCOME_PASSED
	case sluicev1.RunStatus_RUN_STATUS_CANCELLED:
		return sluicev1.Outcome_OUTCOME_CANCELLED
	}
	return sluicev1.Outcome_OUTCOME_FAILED
}
