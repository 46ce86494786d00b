package decide

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"

	sluicev1 "github.com/sluice-ci/sluice/proto/sluice/v1"
)

// Planner stores runs and carries out what their decisions ask. Process drives it; the
// coordinator's planner works on NATS (KV compare-and-swap, JetStream publishes), the
// Harness in memory.
type Planner interface {
	// Load returns a run's stored state, or an error wrapping ErrNotFound. The state is
	// shared: neither Process nor Decide mutates it.
	Load(ctx context.Context, run string) (Stored, error)
	// Submit stores d.State in place of revision rev (0: creates the run), then carries out
	// the rest of d. It returns an error wrapping ErrConflict when the run is no longer at
	// rev, and stores nothing then. With d.State nil it stores nothing: it checks that rev
	// is still the latest (ErrConflict if not) and carries out d's releases.
	Submit(ctx context.Context, run string, rev uint64, d Decision) error
}

// Stored is a run's state as the planner holds it.
type Stored struct {
	State *sluicev1.RunState
	// Rev is the state's revision, for compare-and-swap.
	Rev uint64
	// Published is the highest event seq known to be published. Events of the outbox up to
	// it are dropped from the next state; the others stay until a publish of them is
	// acknowledged, so an event that failed to publish is never lost.
	Published int64
}

// Batch is the inputs queued for one run, decided together and stored with one write.
type Batch struct {
	Run string
	// Create is a new run's state: the batch creates the run (ErrConflict when it exists).
	Create *sluicev1.RunState
	// Inputs are decided in order; a nil input decides nothing (a creation alone).
	Inputs []Input
}

// maxConflicts bounds how often Process decides a batch again because another writer
// changed the run first.
const maxConflicts = 50

// Process decides a batch on the run's latest state and submits the merged decision; when
// another writer changed the run first it decides again on what that writer stored. It
// returns the run's state after the batch and, per input, the error that rejected it (the
// other inputs still apply). err is what kept the whole batch from applying.
func (p Policy) Process(ctx context.Context, pl Planner, b Batch, now func() time.Time) (st *sluicev1.RunState, rejected []error, err error) {
	for range maxConflicts {
		cur, err := p.load(ctx, pl, b)
		if err != nil {
			return nil, nil, err
		}
		next, d, changed, rejected, err := p.decideBatch(cur, b.Inputs, now())
		if err != nil {
			return nil, nil, err
		}
		if !changed {
			// Nothing to store; dropping the inputs is only right on the latest state.
			next = cur.State
		}
		err = pl.Submit(ctx, b.Run, cur.Rev, d)
		switch {
		case errors.Is(err, ErrConflict) && b.Create != nil:
			return nil, nil, fmt.Errorf("%w: run %s exists already", ErrConflict, b.Run)
		case errors.Is(err, ErrConflict):
			continue
		case err != nil:
			return nil, nil, err
		}
		return next, rejected, nil
	}
	return nil, nil, fmt.Errorf("%w: run %s: gave up after %d conflicting updates", ErrConflict, b.Run, maxConflicts)
}

func (p Policy) load(ctx context.Context, pl Planner, b Batch) (Stored, error) {
	if b.Create != nil {
		// Submit at revision 0 is refused with ErrConflict when the run exists, so reading
		// it first would only cost every new run a round trip.
		return Stored{State: b.Create}, nil
	}
	return pl.Load(ctx, b.Run)
}

// decideBatch folds the inputs into one decision, on a copy of cur whose outbox keeps only
// the events not known to be published. Results are decided on that copy in place; other
// inputs through Decide.
func (p Policy) decideBatch(cur Stored, ins []Input, now time.Time) (*sluicev1.RunState, Decision, bool, []error, error) {
	if err := Validate(cur.State); err != nil {
		return nil, Decision{}, false, nil, err
	}
	next := proto.Clone(cur.State).(*sluicev1.RunState)
	next.Outbox = unpublished(next.GetOutbox(), cur.Published)
	var d Decision
	changed := cur.Rev == 0
	rejected := make([]error, len(ins))
	for i, in := range ins {
		if in == nil {
			continue
		}
		var di Decision
		var err error
		if r, ok := in.(ResultIn); ok {
			di, err = p.decideResult(next, r, now)
		} else {
			di, err = p.Decide(next, in, now)
		}
		switch {
		case errors.Is(err, ErrCorrupt):
			return nil, Decision{}, false, nil, err
		case err != nil:
			rejected[i] = err
			continue
		}
		if di.State != nil {
			next = di.State
			changed = true
		}
		d.Merge(di)
	}
	if changed {
		d.State = next
	}
	return next, d, changed, rejected, nil
}

func unpublished(outbox []*sluicev1.Event, through int64) []*sluicev1.Event {
	var out []*sluicev1.Event
	for _, ev := range outbox {
		if ev.GetSeq() > through {
			out = append(out, ev)
		}
	}
	return out
}
