package coordinator

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-ci/sluice/coordinator/decide"
	sluicev1 "github.com/sluice-ci/sluice/proto/sluice/v1"
)

// planner carries out decisions on NATS: run states in KV with compare-and-swap, tasks and
// events on JetStream, locks through the locker. It is the coordinator's decide.Planner.
type planner struct{ c *Coordinator }

var _ decide.Planner = planner{}

// process decides the inputs queued for one run and reports each input's outcome.
func (c *Coordinator) process(ctx context.Context, run string, ws []work) {
	b := decide.Batch{Run: run, Inputs: make([]decide.Input, len(ws))}
	for i, w := range ws {
		b.Inputs[i] = w.in
		if w.create != nil && b.Create == nil {
			b.Create = w.create
		}
	}
	st, rejected, err := c.cfg.Policy.Process(ctx, planner{c}, b, c.now)
	for i, w := range ws {
		if w.done == nil {
			continue
		}
		switch {
		case err != nil:
			w.done(nil, err)
		case rejected[i] != nil:
			w.done(nil, rejected[i])
		default:
			w.done(st, nil)
		}
	}
}

// Load implements decide.Planner, from the cache when it holds the run.
func (p planner) Load(ctx context.Context, run string) (decide.Stored, error) {
	st, rev, err := p.c.load(ctx, run)
	if err != nil {
		return decide.Stored{}, err
	}
	return decide.Stored{State: st, Rev: rev, Published: p.c.knownPublished(ctx, st)}, nil
}

// Submit implements decide.Planner. A failure after the state is stored loses nothing: the
// state says what should exist, and reconcile republishes it.
func (p planner) Submit(ctx context.Context, run string, rev uint64, d decide.Decision) error {
	c := p.c
	if d.State == nil {
		if rev != 0 {
			fresh, err := c.runs.Get(ctx, run)
			if err == nil && fresh.Revision() != rev {
				c.cache.invalidate(run)
				return fmt.Errorf("%w: run %s changed since revision %d", ErrConflict, run, rev)
			}
		}
		for _, op := range d.Release {
			c.locker.push(lockReq{verb: lockRelease, run: run, op: op})
		}
		return nil
	}
	// Evidence goes into the state it describes, so a crash before the commit leaves the
	// input to be decided (and the evidence written) again.
	for _, stage := range d.Evidence {
		if err := c.writeEvidence(ctx, d.State, stage); err != nil {
			c.log.Error("gate evidence not written", "run", run, "stage", stage, "err", err)
		}
	}
	newRev, err := c.commit(ctx, run, d.State, rev)
	switch {
	case errors.Is(err, ErrConflict):
		c.cache.invalidate(run)
		return err
	case errors.Is(err, nats.ErrMaxPayload):
		// Decide keeps states within MaxStateBytes; a server configured below it leaves
		// this run nothing to store. It fails alone: its inputs are dropped, not retried.
		size := proto.Size(d.State)
		c.log.Error("run state cannot be stored; dropping the run's inputs", "run", run, "bytes", size, "max_payload", c.nc.MaxPayload())
		return fmt.Errorf("%w: run %s: its state is %d bytes, above the server's max_payload of %d", ErrUnstorable, run, size, c.nc.MaxPayload())
	case err != nil:
		return fmt.Errorf("store run %s: %w", run, err)
	}
	c.metrics.record(d.State, d, c.now())
	c.tracer.record(d.State, d)
	c.apply(ctx, d.State, newRev, d)
	return nil
}

// load returns the run's state and KV revision. A stored state that does not decode or
// contradicts its spec is ErrUnstorable: its inputs are dropped, never decided on.
func (c *Coordinator) load(ctx context.Context, run string) (*sluicev1.RunState, uint64, error) {
	if st, rev, ok := c.cache.get(run); ok {
		return st, rev, nil
	}
	if isSealKey(run) {
		return nil, 0, fmt.Errorf("%w: run %s", ErrNotFound, run)
	}
	entry, err := c.runs.Get(ctx, run)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, 0, fmt.Errorf("%w: run %s", ErrNotFound, run)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("read run %s: %w", run, err)
	}
	st, err := decodeState(run, entry.Value())
	if err != nil {
		return nil, 0, err
	}
	c.cache.put(run, st, entry.Revision())
	return st, entry.Revision(), nil
}

func decodeState(run string, data []byte) (*sluicev1.RunState, error) {
	var st sluicev1.RunState
	if err := proto.Unmarshal(data, &st); err != nil {
		return nil, fmt.Errorf("%w: decode run %s: %v", ErrUnstorable, run, err)
	}
	if err := decide.Validate(&st); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnstorable, err)
	}
	return &st, nil
}

// commit stores st in place of revision rev (0: creates it), in KV and then in the cache.
// A revision that moved is ErrConflict, whichever code the server reports it with (10071,
// or 10164 on replicated buckets). A finished run's state carries a TTL of RunsMaxAge, so
// the bucket forgets finished runs on its own; an active run's never expires.
func (c *Coordinator) commit(ctx context.Context, run string, st *sluicev1.RunState, rev uint64) (uint64, error) {
	data, err := proto.Marshal(st)
	if err != nil {
		return 0, fmt.Errorf("encode: %w", err)
	}
	opts := []jetstream.PublishOpt{jetstream.WithExpectLastSequencePerSubject(rev)}
	if st.GetStatus().Terminal() {
		opts = append(opts, jetstream.WithMsgTTL(c.cfg.Bus.RunsMaxAge))
	}
	defer c.cache.write(run, data)()
	ack, err := c.js.PublishMsg(ctx, &nats.Msg{Subject: c.cfg.Names.RunKey(run), Data: data}, opts...)
	if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, errWrongLastSequence) {
		return 0, fmt.Errorf("%w: run %s is no longer at revision %d: %w", ErrConflict, run, rev, err)
	}
	if err != nil {
		return 0, err
	}
	c.cache.put(run, st, ack.Sequence)
	return ack.Sequence, nil
}

// apply carries out a decision stored at revision rev.
func (c *Coordinator) apply(ctx context.Context, st *sluicev1.RunState, rev uint64, d decide.Decision) {
	if d.PurgeQueued {
		if err := c.tasks.Purge(ctx, jetstream.WithPurgeSubject(c.cfg.Names.RunTasks(st.GetId()))); err != nil {
			c.log.Warn("purge queued tasks", "run", st.GetId(), "err", err)
		}
	}
	for _, op := range d.Release {
		c.locker.push(lockReq{verb: lockRelease, run: st.GetId(), op: op})
	}
	for _, op := range d.Acquire {
		c.locker.push(lockReq{verb: lockAcquire, run: st.GetId(), op: op})
	}
	for _, sig := range d.Cancels {
		data, _ := proto.Marshal(sig)
		if err := c.nc.Publish(c.cfg.Names.Cancel(st.GetId()), data); err != nil {
			c.log.Warn("send cancel", "run", st.GetId(), "err", err)
		}
	}
	// Tasks and events go out together and share one wait for their acks.
	futures := make([]jetstream.PubAckFuture, len(d.Tasks))
	for i, t := range d.Tasks {
		f, err := c.publishTask(t)
		if err != nil {
			c.log.Warn("publish task", "run", t.GetRunId(), "stage", t.GetStage(), "err", err)
			continue
		}
		futures[i] = f
	}
	events := c.sendOutbox(st, c.cache.published(st.GetId()))
	for i, f := range futures {
		// Only an acknowledged task counts as published: reconcile republishes the others.
		if f != nil && c.await(ctx, []jetstream.PubAckFuture{f}) {
			c.cache.markTask(st.GetId(), taskID(d.Tasks[i]))
		}
	}
	c.sentOutbox(ctx, events, st)
}

// await waits for publish acks; false if any failed.
func (c *Coordinator) await(ctx context.Context, fs []jetstream.PubAckFuture) bool {
	ok := true
	for _, f := range fs {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			ok = false
			c.log.Warn("publish not acknowledged", "subject", f.Msg().Subject, "err", err)
		case <-ctx.Done():
			return false
		}
	}
	return ok
}
