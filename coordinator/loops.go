package coordinator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-ci/sluice/coordinator/decide"
	sluicev1 "github.com/sluice-ci/sluice/proto/sluice/v1"
)

// watch mirrors the runs bucket into the cache: states written by peers, and on start every
// stored run, so a restarted coordinator resumes them. ready closes after the initial values.
//
// A seal follows the final states of the runs it names within sealEvery, so while the
// bucket is read a finished run is held only until its seal comes by.
func (c *Coordinator) watch(ctx context.Context, ready chan<- struct{}) error {
	w, err := c.runs.WatchAll(ctx)
	if err != nil {
		return fmt.Errorf("watch %s: %w", c.cfg.Names.RunsBucket(), err)
	}
	defer func() { _ = w.Stop() }()
	initial := true
	for {
		select {
		case <-ctx.Done():
			return nil
		case e, ok := <-w.Updates():
			if !ok {
				return errors.New("runs watcher closed")
			}
			if e == nil {
				if initial {
					initial = false
					close(ready)
				}
				continue
			}
			if isSealKey(e.Key()) {
				if e.Operation() == jetstream.KeyValuePut {
					// Read back on start, a peer's, or this coordinator's own (a no-op).
					for _, run := range sealedRuns(e.Value()) {
						c.cache.sealed(run)
					}
				}
				continue
			}
			switch e.Operation() {
			case jetstream.KeyValueDelete, jetstream.KeyValuePurge:
				c.cache.remove(e.Key())
				continue
			}
			if c.cache.holds(e.Key(), e.Revision()) || c.cache.echo(e.Key(), e.Value()) {
				// This coordinator's own write, cached or about to be: no need to decode it.
				continue
			}
			st, err := decodeState(e.Key(), e.Value())
			if err != nil {
				// Left out of the cache, the run's inputs read it back and are dropped.
				c.log.Error("run state refused", "run", e.Key(), "err", err)
				c.cache.invalidate(e.Key())
				continue
			}
			c.cache.put(e.Key(), st, e.Revision())
		}
	}
}

// clock feeds due runs a Tick and periodically reconciles.
func (c *Coordinator) clock(ctx context.Context) {
	tick := time.NewTicker(c.cfg.TickEvery)
	defer tick.Stop()
	rec := time.NewTicker(c.cfg.ReconcileEvery)
	defer rec.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-rec.C:
			c.reconcileAll(ctx)
		case <-tick.C:
			for _, run := range c.cache.due(c.now()) {
				w := work{run: run, in: decide.Tick{}, done: func(*sluicev1.RunState, error) { c.cache.ticked(run) }}
				if err := c.submit(ctx, w); err != nil {
					return
				}
			}
		}
	}
}

// dedupedAt reports whether a message first published at t, published again at now, is
// still dropped by the server as a duplicate of it: t is inside the streams' duplicate
// window, with a minute to spare for clocks and the publish itself.
func (c *Coordinator) dedupedAt(t, now time.Time) bool {
	return now.Sub(t) <= c.cfg.Bus.DuplicateWindow-time.Minute
}

// reconcileAll republishes what active runs' states say should exist but this coordinator
// has not seen published: events in a state's outbox and tasks of queued stages. Both carry
// deterministic ids, so whatever was published already is dropped by the server.
func (c *Coordinator) reconcileAll(ctx context.Context) {
	c.reconcileLocks(ctx)
	now := c.now()
	for _, e := range c.cache.entries() {
		st := e.State
		c.publishOutbox(ctx, st, c.knownPublished(ctx, st))
		var fs []jetstream.PubAckFuture
		for i, s := range st.GetStages() {
			// A running stage may still have shards no worker reported on: released from
			// the run's in-flight bound after it started, or lost with a crashed peer.
			if s.GetStatus() != sluicev1.StageStatus_STAGE_STATUS_QUEUED && s.GetStatus() != sluicev1.StageStatus_STAGE_STATUS_RUNNING {
				continue
			}
			if !c.dedupedAt(s.GetQueuedAt().AsTime(), now) {
				// Past the duplicate window a republish could run the stage twice; the
				// max-deliveries advisory and the stage deadline still end a lost task.
				continue
			}
			for _, t := range decide.TasksFor(st, i) {
				id := taskID(t)
				if s.GetShards()[t.GetShardIndex()].GetPhase() != sluicev1.ResultPhase_RESULT_PHASE_UNSPECIFIED || c.cache.taskPublished(st.GetId(), id) {
					continue
				}
				f, err := c.publishTask(t)
				if err != nil {
					c.log.Warn("republish task", "task", id, "err", err)
					continue
				}
				c.cache.markTask(st.GetId(), id)
				fs = append(fs, f)
			}
		}
		c.await(ctx, fs)
	}
}

const resultsAckWait = 5 * time.Second

// A result for a run or state not yet readable is decided again after earlyResultDelay, up
// to earlyResultDeliveries times (about ten seconds) before it is dropped as bogus.
const (
	earlyResultDelay      = 200 * time.Millisecond
	earlyResultDeliveries = 50
)

// consumeResults feeds workers' results to the lanes; a result is acked once its decision
// is stored.
func (c *Coordinator) consumeResults(ctx context.Context) (func(), error) {
	cons, err := c.js.CreateOrUpdateConsumer(ctx, c.cfg.Names.ResultsStream(), jetstream.ConsumerConfig{
		Durable:       c.cfg.Names.CoordinatorConsumer(),
		FilterSubject: c.cfg.Names.AllResults(),
		AckPolicy:     jetstream.AckExplicitPolicy,
		// Deciding a result takes milliseconds; a short AckWait hands the results a dead
		// coordinator held to a live one quickly, and a repeat is ignored by the decisions.
		AckWait:       resultsAckWait,
		MaxAckPending: 20000,
		// A new consumer replays what is stored: results of finished runs are ignored by
		// the decisions, and none published before the first coordinator is lost.
		DeliverPolicy: jetstream.DeliverAllPolicy,
	})
	if err != nil {
		return nil, fmt.Errorf("results consumer: %w", err)
	}
	cc, err := cons.Consume(func(msg jetstream.Msg) {
		r, publisher, err := c.admitResult(msg)
		if err != nil {
			var rej *errResult
			if errors.As(err, &rej) {
				rej.counter.Add(1)
			}
			c.log.Warn("result dropped", "reason", err.Error(), "publisher", publisher.Principal(), "subject", msg.Subject(),
				"run", r.GetRunId(), "stage", r.GetStage(), "attempt", r.GetAttempt(), "phase", r.GetPhase().String())
			_ = msg.TermWithReason("sluice coordinator: " + err.Error())
			return
		}
		w := work{run: r.GetRunId(), in: decide.ResultIn{Result: r}, done: func(_ *sluicev1.RunState, err error) {
			switch {
			case err == nil:
				_ = msg.Ack()
			case errors.Is(err, ErrNotFound) || errors.Is(err, ErrNotYet):
				// The run, or the state the result belongs to, may not be readable here
				// yet: a KV read can be answered by a replica that lags the write.
				if md, merr := msg.Metadata(); merr == nil && md.NumDelivered < earlyResultDeliveries {
					_ = msg.NakWithDelay(earlyResultDelay)
					return
				}
				c.log.Warn("result dropped", "reason", err.Error(), "run", r.GetRunId(), "stage", r.GetStage(), "attempt", r.GetAttempt())
				_ = msg.TermWithReason(err.Error())
			case errors.Is(err, ErrUnstorable):
				c.log.Error("result dropped", "run", r.GetRunId(), "stage", r.GetStage(), "err", err)
				_ = msg.TermWithReason(err.Error())
			default:
				c.log.Warn("result not applied; retrying", "run", r.GetRunId(), "stage", r.GetStage(), "err", err)
				_ = msg.NakWithDelay(time.Second)
			}
		}}
		_ = c.submit(ctx, w)
	}, jetstream.PullMaxMessages(1000))
	if err != nil {
		return nil, fmt.Errorf("consume results: %w", err)
	}
	return cc.Stop, nil
}

// maxDeliverAdvisory is the part of the server's io.nats.jetstream.advisory.v1.max_deliver we use.
type maxDeliverAdvisory struct {
	Stream     string `json:"stream"`
	Consumer   string `json:"consumer"`
	StreamSeq  uint64 `json:"stream_seq"`
	Deliveries int    `json:"deliveries"`
}

// consumeAdvisories fails the stage of a task that exhausted its deliveries, then removes
// the task from the work queue (it was never acked).
func (c *Coordinator) consumeAdvisories(ctx context.Context) (func(), error) {
	cons, err := c.js.CreateOrUpdateConsumer(ctx, c.cfg.Names.AdvisoryStream(), jetstream.ConsumerConfig{
		Durable:   c.cfg.Names.CoordinatorConsumer() + "_advisories",
		AckPolicy: jetstream.AckExplicitPolicy,
		AckWait:   30 * time.Second,
	})
	if err != nil {
		return nil, fmt.Errorf("advisories consumer: %w", err)
	}
	cc, err := cons.Consume(func(msg jetstream.Msg) {
		var adv maxDeliverAdvisory
		if err := json.Unmarshal(msg.Data(), &adv); err != nil {
			_ = msg.TermWithReason("undecodable advisory")
			return
		}
		raw, err := c.tasks.GetMsg(ctx, adv.StreamSeq)
		if err != nil {
			// Already gone: acked late, purged by a cancel, or handled by a peer.
			_ = msg.Ack()
			return
		}
		var task sluicev1.Task
		if err := proto.Unmarshal(raw.Data, &task); err != nil || task.GetRunId() == "" {
			// Undecodable tasks are terminated by workers, never exhausted; nothing to fail.
			_ = msg.Ack()
			return
		}
		run := task.GetRunId()
		in := decide.MaxDelivered{Stage: task.GetStage(), Attempt: task.GetAttempt(), Shard: task.GetShardIndex(), RolloutSeq: task.GetRollout().GetSeq(), Deliveries: adv.Deliveries}
		c.log.Warn("task exhausted its deliveries", "run", run, "stage", in.Stage, "attempt", in.Attempt, "deliveries", adv.Deliveries)
		w := work{run: run, in: in, done: func(_ *sluicev1.RunState, err error) {
			if err != nil && !errors.Is(err, ErrNotFound) {
				_ = msg.NakWithDelay(time.Second)
				return
			}
			if err := c.tasks.DeleteMsg(ctx, adv.StreamSeq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
				c.log.Warn("remove exhausted task", "seq", adv.StreamSeq, "err", err)
			}
			_ = msg.Ack()
		}}
		_ = c.submit(ctx, w)
	})
	if err != nil {
		return nil, fmt.Errorf("consume advisories: %w", err)
	}
	return cc.Stop, nil
}
