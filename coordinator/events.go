package coordinator

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	sluicev1 "github.com/sluice-ci/sluice/proto/sluice/v1"
)

// CloudEvents binary-mode headers (https://github.com/cloudevents/spec, NATS binding).
const (
	ceSpecVersion = "ce-specversion"
	ceID          = "ce-id"
	ceSource      = "ce-source"
	ceType        = "ce-type"
	ceTime        = "ce-time"
	ceSubject     = "ce-subject"
	ceDataSchema  = "ce-dataschema"
	// The CloudEvents NATS binding's header; NATS headers are case-sensitive and the SDKs
	// read it in lower case.
	contentType = "content-type"
)

// Event encodings: what an event's content-type header says its payload is.
const (
	ContentTypeProtobuf = "application/protobuf"
	ContentTypeJSON     = "application/json"
)

// EventSchema is every event's ce-dataschema: the protobuf message its payload is, in either
// encoding (the JSON one is that message's protojson mapping).
const EventSchema = "https://github.com/sluice-ci/sluice/blob/main/proto/sluice/v1/event.proto#sluice.v1.Event"

// DecodeEvent decodes an event's payload by its content-type: protojson when it says JSON,
// protobuf otherwise (events published before the header was lower case say
// "Content-Type").
func DecodeEvent(h nats.Header, data []byte, ev *sluicev1.Event) error {
	if h.Get(contentType) == ContentTypeJSON {
		return protojson.UnmarshalOptions{DiscardUnknown: true}.Unmarshal(data, ev)
	}
	return proto.Unmarshal(data, ev)
}

// CloudEventType is the ce-type of an event type: "stage.passed" -> "dev.sluice.stage.passed.v1".
func CloudEventType(typ string) string { return "dev.sluice." + typ + ".v1" }

// outboxSend is an outbox whose publishes are under way.
type outboxSend struct {
	acks []jetstream.PubAckFuture // one per event sent
	ok   bool                     // every event was handed to the connection
}

// sendOutbox publishes the events of st's outbox after seq through, in order on the
// coordinator's connection; sentOutbox waits for them, so other publishes can share the
// wait. Each event is acked on its own: the ack of a decision's last event does not vouch
// for the ones before it. On a replicated events stream whose leader changes between them,
// the earlier ones can be lost while the last is stored (the container fault suite saw a
// stage's passed event missing beside its run's), and an event marked published is never
// sent again.
func (c *Coordinator) sendOutbox(st *sluicev1.RunState, through int64) outboxSend {
	// Every event of the run carries the run's span as its trace context.
	traceparent := ""
	if st.GetTraceparent() != "" {
		traceparent = runSpanTraceparent(st)
	}
	var events []*sluicev1.Event
	for _, ev := range st.GetOutbox() {
		if ev.GetSeq() > through {
			events = append(events, ev)
		}
	}
	o := outboxSend{ok: true}
	for _, ev := range events {
		msg, err := c.eventMsg(ev, traceparent)
		if err != nil {
			c.log.Warn("encode event", "id", ev.GetId(), "err", err)
			o.ok = false
			continue
		}
		f, err := c.js.PublishMsgAsync(msg)
		if err != nil {
			c.log.Warn("publish event", "id", ev.GetId(), "err", err)
			o.ok = false
			continue
		}
		o.acks = append(o.acks, f)
	}
	return o
}

func (c *Coordinator) eventMsg(ev *sluicev1.Event, traceparent string) (*nats.Msg, error) {
	encoding, marshal := ContentTypeProtobuf, proto.Marshal
	if c.cfg.EventsJSON {
		encoding, marshal = ContentTypeJSON, protojson.Marshal
	}
	data, err := marshal(ev)
	if err != nil {
		return nil, err
	}
	subject := ev.GetRunId()
	if ev.GetStage() != "" {
		subject += "/" + ev.GetStage()
	}
	// An event is a dozen headers and the coordinator's most frequent message: the map is
	// made at its size.
	h := make(nats.Header, 11)
	h.Set(nats.MsgIdHdr, ev.GetId())
	h.Set(ceSpecVersion, "1.0")
	h.Set(ceID, ev.GetId())
	h.Set(ceSource, c.eventSource)
	h.Set(ceType, CloudEventType(ev.GetType()))
	h.Set(ceTime, ev.GetTime().AsTime().Format(time.RFC3339Nano))
	h.Set(ceSubject, subject)
	h.Set(contentType, encoding)
	h.Set(ceDataSchema, EventSchema)
	if c.cfg.Auth != nil && c.cfg.Auth.EvidenceKey != nil && signedEvents[ev.GetType()] {
		h.Set(HeaderSignature, signEvent(c.cfg.Auth.EvidenceKey, data))
	}
	if traceparent != "" {
		h.Set("traceparent", traceparent)
	}
	return &nats.Msg{Subject: c.cfg.Names.Event(ev.GetPipeline(), ev.GetRunId(), ev.GetType()), Header: h, Data: data}, nil
}

// knownPublished is the highest event seq of st known to be in the events stream:
// acknowledged to this process, or else, when st holds events beyond that, the run's newest
// event in the stream. A state a peer stored, or one read back after a restart, may hold
// events published long ago, past the stream's duplicate window: publishing those again
// would announce them twice. But a stored event does not vouch for the ones before it (one
// may have been refused, or lost to a leader change, while a later one was stored), so the
// outbox's events still inside the duplicate window are sent again from the first of them:
// the server drops those it holds.
func (c *Coordinator) knownPublished(ctx context.Context, st *sluicev1.RunState) int64 {
	run := st.GetId()
	through := c.cache.published(run)
	if through >= st.GetEventSeq() || len(st.GetOutbox()) == 0 || st.GetOutbox()[len(st.GetOutbox())-1].GetSeq() <= through {
		return through
	}
	last, err := c.lastStoredEvent(ctx, st)
	if err != nil {
		c.log.Warn("read the run's newest stored event", "run", run, "err", err)
		return through
	}
	now := c.now()
	for _, ev := range st.GetOutbox() {
		if ev.GetSeq() > through && ev.GetSeq() <= last && c.dedupedAt(ev.GetTime().AsTime(), now) {
			last = ev.GetSeq() - 1
			break
		}
	}
	if last > through {
		c.cache.markPublished(run, last)
	}
	return max(through, last)
}

// publishOutbox publishes the events of a state after seq through.
// Once every event of a finished run is in the stream, the run is sealed (sealer).
func (c *Coordinator) publishOutbox(ctx context.Context, st *sluicev1.RunState, through int64) {
	c.sentOutbox(ctx, c.sendOutbox(st, through), st)
}

// sentOutbox waits for the publishes of o and records them; see publishOutbox.
func (c *Coordinator) sentOutbox(ctx context.Context, o outboxSend, st *sluicev1.RunState) {
	if !o.ok || !c.await(ctx, o.acks) {
		return
	}
	c.cache.markPublished(st.GetId(), st.GetEventSeq())
	if st.GetStatus().Terminal() && len(st.GetOutbox()) > 0 {
		c.sealer.add(st.GetId())
	}
}

// lastStoredEvent is the seq of the run's newest event in the events stream (0: none).
func (c *Coordinator) lastStoredEvent(ctx context.Context, st *sluicev1.RunState) (int64, error) {
	if c.events == nil {
		return 0, nil
	}
	msg, err := c.events.GetLastMsgForSubject(ctx, c.cfg.Names.EventFilter(st.GetPipeline(), st.GetId()))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	var ev sluicev1.Event
	if err := DecodeEvent(msg.Header, msg.Data, &ev); err != nil {
		return 0, fmt.Errorf("decode event %d of the events stream: %w", msg.Sequence, err)
	}
	return ev.GetSeq(), nil
}
