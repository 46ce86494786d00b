package main

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/sluice-ci/sluice/coordinator"
	"github.com/sluice-ci/sluice/internal/auth"
	sluicev1 "github.com/sluice-ci/sluice/proto/sluice/v1"
)

type eventsOptions struct {
	follow   bool
	typ      string
	pipeline string
	run      string
	out      output
	key      string
}

func newEventsCmd(a *app) *cobra.Command {
	var o eventsOptions
	cmd := &cobra.Command{
		Use:   "events",
		Short: "Read the event stream: every transition of every run",
		Long: `Read the events stream, oldest first. Every transition of a run is an event: run.submitted,
run.passed, run.failed, run.cancelled, stage.queued, stage.started, stage.passed,
stage.failed, stage.retrying, stage.skipped, stage.cancelled, stage.waiting_approval,
stage.approved (and the rollout events of traffic-shift stages).

Without --follow it prints the events stored now and exits; with --follow it then keeps
printing new ones until Ctrl-C, or with --run until that run has ended. --type, --pipeline and --run narrow the subjects read
(--type also takes a family: 'stage.*', 'rollout.*'). -o json prints one protojson Event per line (-o yaml a YAML document each), with
its type and stage as fields, for jq and log shippers.

Other systems subscribe to the same stream directly: subjects are
<prefix>.event.<pipeline>.<run>.<type>, payloads are protobuf sluice.v1.Event with
CloudEvents headers (ce-type dev.sluice.<type>.v1).

The events other systems act on (run.passed, run.failed, run.cancelled, rollout.promoted,
rollout.rolled_back) carry a Sluice-Signature header: an ed25519 signature of the payload by
the fleet's evidence key. --key DIR/evidence.pub checks it, and checks that the payload's run
and type are the subject's; an event that fails either is reported on stderr as forged and
not printed. Act on such an event only when it verifies: on a NATS account the server itself
can be made to store a copy of a message on any subject (a JetStream read answered there).`,
		Example: `  sluice events
  sluice events --follow --type stage.failed
  sluice events --pipeline hello --run 01JD3K5W7N8Q2R4T6V8X0Z2B4D
  sluice events --follow -o json | jq -c 'select(.type == "run.failed")'`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.out.check(cmd); err != nil {
				return err
			}
			for flag, v := range map[string]string{"--pipeline": o.pipeline, "--run": o.run} {
				if v != "" && !subjectToken.MatchString(v) {
					return usageErrorf(cmd, "%s %q: pipeline names and run ids are letters, digits, '-' and '_' (no NATS wildcards or dots; leave it out for all)", flag, v)
				}
			}
			if o.typ != "" && !eventType.MatchString(o.typ) {
				return usageErrorf(cmd, "--type %q: an event type such as stage.failed, or a family such as 'stage.*'", o.typ)
			}
			ctx := cmd.Context()
			c, err := a.connect(ctx, "sluice events")
			if err != nil {
				return err
			}
			defer c.Close()
			var pub ed25519.PublicKey
			if o.key != "" {
				data, err := os.ReadFile(o.key)
				if err != nil {
					return usageError(cmd, fmt.Errorf("--key: %w", err))
				}
				if pub, err = auth.ParsePublicKey(data); err != nil {
					return usageError(cmd, fmt.Errorf("--key %s: %w", o.key, err))
				}
			}
			if o.follow && o.run != "" {
				var stop context.CancelFunc
				ctx, stop = untilRunEnds(ctx, c, o.run)
				defer stop()
			}
			filter := eventsFilter(c, o)
			err = readStream(ctx, c, c.names.EventsStream(), filter, o.follow, func(m jetstream.Msg) error {
				var ev sluicev1.Event
				if err := coordinator.DecodeEvent(m.Headers(), m.Data(), &ev); err != nil {
					fmt.Fprintf(a.stderr, "(skipped an undecodable event on %s: %v)\n", m.Subject(), err)
					return nil
				}
				if pub != nil {
					if why := checkEvent(c, m, &ev, pub); why != "" {
						fmt.Fprintf(a.stderr, "FORGED event on %s skipped: %s\n", m.Subject(), why)
						return nil
					}
				}
				if !o.out.table() {
					return o.out.write(a.stdout, &ev)
				}
				writeEventLine(a.stdout, &ev)
				return nil
			})
			if o.follow && followEnded(ctx, err) {
				return nil
			}
			return err
		},
	}
	f := cmd.Flags()
	f.BoolVar(&o.follow, "follow", false, "keep printing new events until Ctrl-C (with --run: until the run ends)")
	f.StringVar(&o.typ, "type", "", "only events of this type, e.g. stage.failed or 'stage.*'")
	f.StringVar(&o.pipeline, "pipeline", "", "only events of this pipeline")
	f.StringVar(&o.run, "run", "", "only events of this run")
	addOutputFlag(cmd, &o.out, "Event")
	f.StringVar(&o.key, "key", "", "the fleet's evidence.pub: check the signed events and the subject of every event")
	return cmd
}

// eventType is a type (stage.failed) or a family ending in a wildcard (stage.*, rollout.>).
var eventType = regexp.MustCompile(`^[a-z_]+(\.[a-z_]+)*(\.(\*|>))?$`)

// eventsFilter is the subject filter for the options: <prefix>.event.<pipeline>.<run>.<type>.
func eventsFilter(c *conn, o eventsOptions) string {
	if o.typ == "" {
		return c.names.EventFilter(o.pipeline, o.run)
	}
	p, r := o.pipeline, o.run
	if p == "" {
		p = "*"
	}
	if r == "" {
		r = "*"
	}
	return c.names.Event(p, r, o.typ)
}

func writeEventLine(w io.Writer, ev *sluicev1.Event) {
	line := fmt.Sprintf("%s  %s  %s  %-22s", ev.GetTime().AsTime().Local().Format("2006-01-02 15:04:05.000"), ev.GetPipeline(), ev.GetRunId(), ev.GetType())
	if s := ev.GetStage(); s != "" {
		line += "  " + s
	}
	if n := ev.GetAttempt(); n > 0 {
		line += fmt.Sprintf("  attempt %d", n)
	}
	if m := eventMessage(ev); m != "" {
		line += "  " + m
	}
	fmt.Fprintln(w, strings.TrimRight(line, " "))
}

// checkEvent says why an event is not the coordinator's, or "": its subject must name its
// payload's pipeline, run and type, and a signed type must carry a valid signature.
func checkEvent(c *conn, m jetstream.Msg, ev *sluicev1.Event, pub ed25519.PublicKey) string {
	if want := c.names.Event(ev.GetPipeline(), ev.GetRunId(), ev.GetType()); m.Subject() != want {
		return fmt.Sprintf("its payload is a %s of run %s, which belongs on %s", ev.GetType(), ev.GetRunId(), want)
	}
	if coordinator.SignsEvent(ev.GetType()) && !coordinator.VerifyEvent(pub, m.Data(), m.Headers().Get(coordinator.HeaderSignature)) {
		return "no valid " + coordinator.HeaderSignature + " from the fleet's evidence key"
	}
	return ""
}
