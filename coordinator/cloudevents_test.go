package coordinator

import (
	"testing"

	cejetstream "github.com/cloudevents/sdk-go/protocol/nats_jetstream/v2"
	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-ci/sluice/internal/bus"
	"github.com/sluice-ci/sluice/internal/bus/bustest"
	sluicev1 "github.com/sluice-ci/sluice/proto/sluice/v1"
)

// The CloudEvents Go SDK's JetStream binding reads Sluice's events as they are stored:
// type, id, source, subject, content type and schema from the headers, the payload in the
// encoding the content type names (protobuf by default, protojson with EventsJSON).
func TestEventsReadByTheCloudEventsSDK(t *testing.T) {
	for _, tt := range []struct {
		name     string
		json     bool
		encoding string
		decode   func([]byte, proto.Message) error
	}{
		{"protobuf", false, ContentTypeProtobuf, proto.Unmarshal},
		{"json", true, ContentTypeJSON, protojson.Unmarshal},
	} {
		t.Run(tt.name, func(t *testing.T) {
			env := bustest.Start(t, bus.Config{})
			startCoordinator(t, env, func(c *Config) { c.EventsJSON = tt.json })
			startWorker(t, env, pass)
			st := submit(t, env, "main", stage("a"))
			waitRun(t, env, st.GetId(), sluicev1.RunStatus_RUN_STATUS_PASSED)
			msgs := bustest.Stored(t, env.JS, env.Config.Names.EventsStream(), env.Config.Names.EventFilter("", st.GetId()))
			if len(msgs) == 0 {
				t.Fatal("no events stored")
			}
			for _, m := range msgs {
				ce, err := binding.ToEvent(t.Context(), cejetstream.NewMessage(&nats.Msg{Subject: m.Subject(), Header: m.Headers(), Data: m.Data()}))
				if err != nil {
					t.Fatalf("the SDK cannot read the event on %s: %v (headers %v)", m.Subject(), err, m.Headers())
				}
				var ev sluicev1.Event
				if err := tt.decode(ce.Data(), &ev); err != nil {
					t.Fatalf("the SDK's data of %s does not decode as %s: %v", ce.ID(), tt.encoding, err)
				}
				if err := ce.Validate(); err != nil {
					t.Errorf("event %s: %v", ce.ID(), err)
				}
				if ce.ID() != ev.GetId() || ce.Type() != CloudEventType(ev.GetType()) || ce.Source() == "" || ce.Subject() == "" ||
					ce.DataContentType() != tt.encoding || ce.DataSchema() != EventSchema || ce.SpecVersion() != "1.0" {
					t.Errorf("the SDK read id %q type %q source %q subject %q content type %q schema %q; the event is %s %s",
						ce.ID(), ce.Type(), ce.Source(), ce.Subject(), ce.DataContentType(), ce.DataSchema(), ev.GetId(), ev.GetType())
				}
				var back sluicev1.Event
				if err := DecodeEvent(m.Headers(), m.Data(), &back); err != nil || !proto.Equal(&back, &ev) {
					t.Errorf("DecodeEvent of %s: %v", ev.GetId(), err)
				}
			}
		})
	}
}
