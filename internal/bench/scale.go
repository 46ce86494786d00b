package bench

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/sluice-ci/sluice/coordinator"
	"github.com/sluice-ci/sluice/coordinator/decide"
	"github.com/sluice-ci/sluice/internal/bus"
	sluicev1 "github.com/sluice-ci/sluice/proto/sluice/v1"
)

// prefillBatch is how many finished runs are written before waiting for their acks.
const prefillBatch = 2000

// prefill writes n finished 1-stage runs into the runs bucket, as a fleet that has worked
// for a while holds them: passed, the events of their last decision in the outbox, sealed
// (their events long published), kept for the default retention. It provisions the bus
// first, as the coordinator would.
func prefill(ctx context.Context, s *server, n int, progress func(string, ...any)) error {
	cfg := bus.Config{Names: s.names}.WithDefaults()
	if err := bus.Provision(ctx, s.js, cfg); err != nil {
		return err
	}
	kv, err := s.js.KeyValue(ctx, s.names.RunsBucket())
	if err != nil {
		return fmt.Errorf("open %s: %w", s.names.RunsBucket(), err)
	}
	spec := noopSpec(1, sluicev1.StageKind_STAGE_KIND_STATIC)
	finished := time.Now().Add(-time.Hour)
	for done := 0; done < n; {
		batch := min(prefillBatch, n-done)
		ids := make([]string, batch)
		for i := range batch {
			id := finishedID(done + i)
			ids[i] = id
			st := decide.NewRun(id, spec, &sluicev1.SubmitRunRequest{Ref: "main"}, "", finished)
			st.Status = sluicev1.RunStatus_RUN_STATUS_PASSED
			st.FinishedAt = timestamppb.New(finished)
			st.Stages[0].Status = sluicev1.StageStatus_STAGE_STATUS_PASSED
			st.Outbox = nil
			for _, typ := range []string{"stage.passed", "run.passed"} {
				st.EventSeq++
				st.Outbox = append(st.Outbox, &sluicev1.Event{Id: fmt.Sprintf("%s/%d", id, st.EventSeq), Type: typ, Time: st.FinishedAt,
					Pipeline: st.GetPipeline(), RunId: id, Seq: st.EventSeq})
			}
			data, err := proto.Marshal(st)
			if err != nil {
				return err
			}
			if _, err := s.js.PublishMsgAsync(&nats.Msg{Subject: s.names.RunKey(id), Data: data}, jetstream.WithMsgTTL(cfg.RunsMaxAge)); err != nil {
				return fmt.Errorf("write finished run %s: %w", id, err)
			}
		}
		select {
		case <-s.js.PublishAsyncComplete():
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Minute):
			return errors.New("finished runs not acknowledged within a minute")
		}
		if err := coordinator.SealRuns(ctx, kv, cfg.RunsMaxAge, ids); err != nil {
			return err
		}
		done += batch
		if done%(10*prefillBatch) == 0 || done == n {
			progress("  %d of %d finished runs written", done, n)
		}
	}
	return nil
}

func finishedID(i int) string { return fmt.Sprintf("finished-%07d", i) }

// holdsFinished checks that the coordinator took the prefilled runs for what they are:
// the last one written reads back as passed.
func (f *fleet) holdsFinished(ctx context.Context, n int) error {
	id := finishedID(n - 1)
	st, err := f.client.Get(ctx, id)
	if err != nil {
		return fmt.Errorf("the coordinator does not hold the finished run %s: %w", id, err)
	}
	if st.GetStatus() != sluicev1.RunStatus_RUN_STATUS_PASSED {
		return fmt.Errorf("the finished run %s reads back %s", id, st.GetStatus().Short())
	}
	return nil
}

// bigRun submits one run of stages independent no-op stages and, until it ends, times
// 1-stage runs one at a time beside it.
func (f *fleet) bigRun(ctx context.Context, stages int) (took time.Duration, beside Latencies, err error) {
	spec := noopSpec(stages, sluicev1.StageKind_STAGE_KIND_STATIC)
	for _, s := range spec.Stages {
		s.Needs = nil
	}
	small := noopSpec(1, sluicev1.StageKind_STAGE_KIND_STATIC)
	start := time.Now()
	big := make(chan error, 1)
	go func() { big <- f.submit(ctx, spec) }()
	for {
		select {
		case err := <-big:
			if err != nil {
				return 0, nil, fmt.Errorf("the %d-stage run: %w", stages, err)
			}
			f.runs++
			return time.Since(start), beside, nil
		default:
		}
		l, err := f.sequential(ctx, small, 1)
		if err != nil {
			<-big
			return 0, nil, err
		}
		beside = append(beside, l...)
	}
}
