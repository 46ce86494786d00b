package coordinator

import (
	"context"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
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
	contentType   = "Content-Type"
)

// CloudEventType is the ce-type of an event type: "stage.passed" -> "dev.sluice.stage.passed.v1".
func CloudEventType(typ string) string { return "dev.sluice." + typ + ".v1" }

// publishEvents publishes the run's outbox asynchronously; the events stream drops an event
// it already holds (its id is the Nats-Msg-Id).
func (c *Coordinator) publishEvents(st *sluicev1.RunState) []jetstream.PubAckFuture {
	fs := make([]jetstream.PubAckFuture, 0, len(st.GetOutbox()))
	for _, ev := range st.GetOutbox() {
		msg, err := c.eventMsg(st, ev)
		if err != nil {
			c.log.Warn("encode event", "id", ev.GetId(), "err", err)
			continue
		}
		f, err := c.js.PublishMsgAsync(msg)
		if err != nil {
			c.log.Warn("publish event", "id", ev.GetId(), "err", err)
			continue
		}
		fs = append(fs, f)
	}
	return fs
}

func (c *Coordinator) eventMsg(st *sluicev1.RunState, ev *sluicev1.Event) (*nats.Msg, error) {
	data, err := proto.Marshal(ev)
	if err != nil {
		return nil, err
	}
	msg := nats.NewMsg(c.cfg.Names.Event(ev.GetPipeline(), ev.GetRunId(), ev.GetType()))
	msg.Data = data
	subject := ev.GetRunId()
	if ev.GetStage() != "" {
		subject += "/" + ev.GetStage()
	}
	msg.Header.Set(nats.MsgIdHdr, ev.GetId())
	msg.Header.Set(ceSpecVersion, "1.0")
	msg.Header.Set(ceID, ev.GetId())
	msg.Header.Set(ceSource, "/sluice/"+c.cfg.Names.Prefix+"/coordinator")
	msg.Header.Set(ceType, CloudEventType(ev.GetType()))
	msg.Header.Set(ceTime, ev.GetTime().AsTime().Format(time.RFC3339Nano))
	msg.Header.Set(ceSubject, subject)
	msg.Header.Set(contentType, "application/protobuf")
	if c.cfg.Auth != nil && c.cfg.Auth.EvidenceKey != nil && signedEvents[ev.GetType()] {
		msg.Header.Set(HeaderSignature, signEvent(c.cfg.Auth.EvidenceKey, data))
	}
	if st.GetTraceparent() != "" {
		msg.Header.Set("traceparent", st.GetTraceparent())
	}
	return msg, nil
}

// publishOutbox republishes events a state holds that this coordinator has not seen
// acknowledged: a peer (or this process, before a restart) may have stored the state and
// died before publishing them.
func (c *Coordinator) publishOutbox(ctx context.Context, st *sluicev1.RunState) {
	if len(st.GetOutbox()) == 0 || c.cache.eventsThrough(st.GetId()) >= st.GetEventSeq() {
		return
	}
	fs := c.publishEvents(st)
	if c.await(ctx, fs) && len(fs) == len(st.GetOutbox()) {
		c.cache.markEvents(st.GetId(), st.GetEventSeq())
	}
}
