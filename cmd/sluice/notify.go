package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/sluice-ci/sluice/coordinator"
	"github.com/sluice-ci/sluice/internal/bus"
	sluicev1 "github.com/sluice-ci/sluice/proto/sluice/v1"
)

// defaultNotifyTypes are what a team wants a message about: a failure, a gate waiting for a
// person, a rollback.
var defaultNotifyTypes = []string{"run.failed", "stage.failed", "stage.waiting_approval", "rollout.rolled_back"}

// notifyOptions configure the webhook bridge.
type notifyOptions struct {
	webhook  string
	types    []string
	pipeline string
	link     string
	retries  int
	// backoff is the first retry's delay; each next one doubles it.
	backoff time.Duration
	client  *http.Client
}

func newNotifyCmd(a *app) *cobra.Command {
	o := notifyOptions{backoff: time.Second}
	cmd := &cobra.Command{
		Use:   "notify --webhook URL",
		Short: "Post failures, approvals waiting and rollbacks to a chat webhook",
		Long: `Post a message to a Slack-compatible incoming webhook (Slack, Mattermost, Rocket.Chat,
Discord's /slack endpoint) for each event of the chosen types, until Ctrl-C:
` + "`" + `{"text": "..."}` + "`" + ` with the pipeline, run, stage and what happened.

It reads the events stream through a durable consumer (notify-<your user name>, or
notify-default on a fleet without authentication): a notifier that restarts goes on from
where it stopped, and several started with the same credentials share the work, for high
availability. A post that fails is retried --retries times with a doubling delay; a 4xx
answer other than 429 is not retried (the webhook refuses the message); an event whose
posts all fail is tried again a minute later.`,
		Example: `  sluice notify --webhook https://hooks.slack.com/services/T0/B0/XXXX
  sluice notify --webhook $HOOK --types run.failed,rollout.rolled_back --pipeline payments
  # Links in the messages to the dashboard:
  sluice notify --webhook $HOOK --link https://sluice.example.com`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.check(); err != nil {
				return usageError(cmd, err)
			}
			ctx := cmd.Context()
			c, err := a.connect(ctx, "sluice notify")
			if err != nil {
				return err
			}
			defer c.Close()
			a.note("posting %s events to %s; Ctrl-C to stop", strings.Join(o.types, ", "), redactURL(o.webhook))
			err = notify(ctx, c, o, a.log)
			if errors.Is(err, context.Canceled) {
				return nil
			}
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.webhook, "webhook", "", "incoming webhook URL to post to (required)")
	f.StringSliceVar(&o.types, "types", defaultNotifyTypes, "event types to post")
	f.StringVar(&o.pipeline, "pipeline", "", "only events of this pipeline")
	f.StringVar(&o.link, "link", "", "base URL of the coordinator's dashboard, for links to runs")
	f.IntVar(&o.retries, "retries", 5, "retries of a failed post before the event is put back for later")
	return cmd
}

func (o *notifyOptions) check() error {
	if o.webhook == "" {
		return errors.New("--webhook is required: the incoming webhook URL to post to")
	}
	for flag, raw := range map[string]string{"--webhook": o.webhook, "--link": o.link} {
		if raw == "" {
			continue
		}
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("%s %q: want an http(s) URL", flag, redactURL(raw))
		}
	}
	if len(o.types) == 0 {
		return errors.New("--types: name at least one event type, e.g. run.failed")
	}
	for _, t := range o.types {
		if !eventType.MatchString(t) {
			return fmt.Errorf("--types %q: an event type such as stage.failed, or a family such as 'stage.*'", t)
		}
	}
	if o.pipeline != "" && !subjectToken.MatchString(o.pipeline) {
		return fmt.Errorf("--pipeline %q: pipeline names are letters, digits, '-' and '_'", o.pipeline)
	}
	if o.retries < 0 {
		return fmt.Errorf("--retries %d: must be 0 or more", o.retries)
	}
	return nil
}

// redactURL hides a webhook's path and query, where its secret is.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "(unparsable URL)"
	}
	return u.Scheme + "://" + u.Host + "/..."
}

// notify posts the chosen events until ctx ends.
func notify(ctx context.Context, c *conn, o notifyOptions, log *slog.Logger) error {
	if o.client == nil {
		o.client = &http.Client{Timeout: 10 * time.Second}
	}
	pipeline := o.pipeline
	if pipeline == "" {
		pipeline = "*"
	}
	filters := make([]string, len(o.types))
	for i, t := range o.types {
		filters[i] = c.names.Prefix + ".event." + pipeline + ".*." + t
	}
	// On a fleet with authentication the user may ack only its own notifier's consumer.
	name := "default"
	if id := bus.IdentityOf(c.nc); !id.Anonymous() {
		name = id.Name
	}
	cons, err := c.js.CreateOrUpdateConsumer(ctx, c.names.EventsStream(), jetstream.ConsumerConfig{
		Durable:        c.names.NotifyConsumer(name),
		Description:    "sluice notify: events posted to a webhook",
		FilterSubjects: filters,
		AckPolicy:      jetstream.AckExplicitPolicy,
		// Long enough for every retry of one post.
		AckWait:       time.Duration(1<<min(o.retries, 6))*o.backoff + time.Duration(o.retries+1)*o.client.Timeout,
		MaxAckPending: 1,
		// New notifiers start with what happens next, not the stream's history.
		DeliverPolicy: jetstream.DeliverNewPolicy,
	})
	if err != nil {
		return c.explain(ctx, fmt.Errorf("events consumer on %s: %w", c.names.EventsStream(), err))
	}
	it, err := cons.Messages()
	if err != nil {
		return fmt.Errorf("read events: %w", err)
	}
	defer it.Stop()
	for {
		msg, err := it.Next(jetstream.NextContext(ctx))
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("read events: %w", err)
		}
		var ev sluicev1.Event
		if err := coordinator.DecodeEvent(msg.Headers(), msg.Data(), &ev); err != nil {
			log.Warn("notify: skipping an undecodable event", "subject", msg.Subject(), "err", err)
			_ = msg.Term()
			continue
		}
		switch err := post(ctx, o, notifyText(&ev, o.link)); {
		case err == nil, errors.Is(err, errRefused):
			if err != nil {
				log.Error("notify: the webhook refused the message; dropping it", "event", ev.GetId(), "err", err)
			}
			if err := msg.Ack(); err != nil {
				log.Warn("notify: ack", "event", ev.GetId(), "err", err)
			}
		case ctx.Err() != nil:
			_ = msg.Nak()
			return ctx.Err()
		default:
			log.Error("notify: posting failed; trying the event again in a minute", "event", ev.GetId(), "err", err)
			_ = msg.NakWithDelay(time.Minute)
		}
	}
}

// errRefused is a 4xx answer other than 429: trying again would not help.
var errRefused = errors.New("the webhook refused the message")

// post sends text, retrying a failure o.retries times with a doubling delay.
func post(ctx context.Context, o notifyOptions, text string) error {
	body, err := json.Marshal(map[string]string{"text": text})
	if err != nil {
		return err
	}
	delay := o.backoff
	for attempt := 0; ; attempt++ {
		err := postOnce(ctx, o.client, o.webhook, body)
		if err == nil || errors.Is(err, errRefused) || attempt >= o.retries {
			return err
		}
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return ctx.Err()
		}
		delay *= 2
	}
}

func postOnce(ctx context.Context, client *http.Client, webhook string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, webhook, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		// The error names the URL, secret path included.
		var uerr *url.Error
		if errors.As(err, &uerr) {
			return fmt.Errorf("post to %s: %w", redactURL(webhook), uerr.Err)
		}
		return err
	}
	defer resp.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
	switch {
	case resp.StatusCode/100 == 2:
		return nil
	case resp.StatusCode/100 == 4 && resp.StatusCode != http.StatusTooManyRequests:
		return fmt.Errorf("%w: %s: %s", errRefused, resp.Status, strings.TrimSpace(string(snippet)))
	}
	return fmt.Errorf("post to %s: %s: %s", redactURL(webhook), resp.Status, strings.TrimSpace(string(snippet)))
}

// notifyText is the message for ev: what happened, where, and a link when there is a
// dashboard to link to.
func notifyText(ev *sluicev1.Event, link string) string {
	icon := map[string]string{
		"run.failed": ":x:", "stage.failed": ":x:", "stage.waiting_approval": ":raised_hand:",
		"rollout.rolled_back": ":rewind:", "run.passed": ":white_check_mark:",
	}[ev.GetType()]
	if icon == "" {
		icon = ":information_source:"
	}
	run := ev.GetRunId()
	if link != "" {
		run = fmt.Sprintf("<%s/runs/%s|%s>", strings.TrimSuffix(link, "/"), run, run)
	}
	where := fmt.Sprintf("*%s* run %s", ev.GetPipeline(), run)
	if ev.GetRef() != "" {
		where += " (" + ev.GetRef() + ")"
	}
	if ev.GetStage() != "" {
		where += ", stage *" + ev.GetStage() + "*"
	}
	what := strings.ReplaceAll(ev.GetType(), "_", " ")
	if ev.GetMessage() != "" {
		what += ": " + ev.GetMessage()
	}
	return fmt.Sprintf("%s %s: %s", icon, where, what)
}
