package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// errStopReading is returned by a readStream callback that has seen what it waited for.
var errStopReading = errors.New("stop reading")

// readStream hands the messages of stream that match filter to fn, oldest first. Without
// follow it stops after the last matching message stored when it started (or at once when
// there is none); with follow it then keeps waiting for new ones. It returns nil when the
// snapshot is read or fn returns errStopReading, and ctx's error when ctx ends first.
func readStream(ctx context.Context, c *conn, stream, filter string, follow bool, fn func(jetstream.Msg) error) (err error) {
	ctx, cancel := c.bind(ctx)
	defer cancel()
	defer func() { err = c.explain(ctx, err) }()
	s, err := c.js.Stream(ctx, stream)
	if err != nil {
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			return fmt.Errorf("stream %s does not exist on %s: is this a Sluice fleet (check --nats and --prefix)?", stream, c.url)
		}
		return fmt.Errorf("stream %s: %w", stream, err)
	}
	var last uint64
	if !follow {
		m, err := s.GetLastMsgForSubject(ctx, filter)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("last message of %s on %s: %w", filter, stream, err)
		}
		last = m.Sequence
	}
	cons, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{filter},
		DeliverPolicy:  jetstream.DeliverAllPolicy,
	})
	if err != nil {
		return fmt.Errorf("read %s on %s: %w", filter, stream, err)
	}
	it, err := cons.Messages()
	if err != nil {
		return fmt.Errorf("read %s on %s: %w", filter, stream, err)
	}
	defer it.Stop()
	for {
		msg, err := it.Next(jetstream.NextContext(ctx))
		if err != nil {
			if ctxErr := ctx.Err(); ctxErr != nil {
				return ctxErr
			}
			return fmt.Errorf("read %s on %s: %w", filter, stream, err)
		}
		if err := fn(msg); err != nil {
			if errors.Is(err, errStopReading) {
				return nil
			}
			return err
		}
		if !follow {
			meta, err := msg.Metadata()
			if err != nil {
				return fmt.Errorf("read %s on %s: %w", filter, stream, err)
			}
			if meta.Sequence.Stream >= last {
				return nil
			}
		}
	}
}
