package decide

import (
	"context"
	"fmt"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	sluicev1 "github.com/sluice-ci/sluice/proto/sluice/v1"
)

// Harness is a Planner in memory that records what it is asked to do: tests drive runs
// through Process, as the coordinator does, without NATS, and read what would have been
// stored and published. It also holds Process to the Planner's contract: a loaded state is
// shared and must come back unchanged. (Nomad's scheduler.Harness is the model.)
type Harness struct {
	Policy Policy
	// Now is the time of the decisions; tests move it.
	Now time.Time
	// Submitted is every decision submitted, in order, with a state or without.
	Submitted []Decision
	// Published is every event published, in order.
	Published []*sluicev1.Event
	// FailPublish, while set, makes publishing fail: events stay in their run's outbox.
	FailPublish bool
	// Conflicts is how many of the next submits fail with ErrConflict, as when another
	// coordinator stores the run first.
	Conflicts int

	mu   sync.Mutex
	runs map[string]*harnessRun
	// lent are the states Load handed out, with copies to check them against.
	lent []lent
}

type harnessRun struct {
	st        *sluicev1.RunState
	rev       uint64
	published int64
}

type lent struct{ st, copy *sluicev1.RunState }

// NewHarness returns an empty harness deciding with p at now.
func NewHarness(p Policy, now time.Time) *Harness {
	return &Harness{Policy: p, Now: now, runs: map[string]*harnessRun{}}
}

// Load implements Planner.
func (h *Harness) Load(_ context.Context, run string) (Stored, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	r, ok := h.runs[run]
	if !ok {
		return Stored{}, fmt.Errorf("%w: run %s", ErrNotFound, run)
	}
	h.lent = append(h.lent, lent{st: r.st, copy: proto.Clone(r.st).(*sluicev1.RunState)})
	return Stored{State: r.st, Rev: r.rev, Published: r.published}, nil
}

// Submit implements Planner: a compare-and-swap on the run's revision, then the events of
// the new state's outbox are published (unless FailPublish).
func (h *Harness) Submit(_ context.Context, run string, rev uint64, d Decision) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	r := h.runs[run]
	var cur uint64
	if r != nil {
		cur = r.rev
	}
	if h.Conflicts > 0 {
		h.Conflicts--
		return fmt.Errorf("%w: run %s changed (simulated)", ErrConflict, run)
	}
	if cur != rev {
		return fmt.Errorf("%w: run %s is at revision %d, not %d", ErrConflict, run, cur, rev)
	}
	h.Submitted = append(h.Submitted, d)
	if d.State == nil {
		return nil
	}
	if r == nil {
		r = &harnessRun{}
		h.runs[run] = r
	}
	r.st, r.rev = d.State, rev+1
	if !h.FailPublish {
		for _, ev := range d.State.GetOutbox() {
			if ev.GetSeq() > r.published {
				h.Published = append(h.Published, ev)
			}
		}
		r.published = d.State.GetEventSeq()
	}
	return nil
}

// Create stores a new run and decides its Start.
func (h *Harness) Create(st *sluicev1.RunState) (Decision, error) {
	return h.process(Batch{Run: st.GetId(), Create: st, Inputs: []Input{Start{}}})
}

// Do decides inputs of a stored run as one batch and returns the decision submitted last
// (what the batch changed; no State when it changed nothing). err is the batch's error,
// else the first input's rejection.
func (h *Harness) Do(run string, ins ...Input) (Decision, error) {
	return h.process(Batch{Run: run, Inputs: ins})
}

func (h *Harness) process(b Batch) (Decision, error) {
	before := len(h.Submitted)
	_, rejected, err := h.Policy.Process(context.Background(), h, b, func() time.Time { return h.Now })
	if merr := h.checkLent(); merr != nil {
		return Decision{}, merr
	}
	if err != nil {
		return Decision{}, err
	}
	var d Decision
	if len(h.Submitted) > before {
		d = h.Submitted[len(h.Submitted)-1]
	}
	for _, r := range rejected {
		if r != nil {
			return d, r
		}
	}
	return d, nil
}

// State returns a run's stored state (nil when there is none); callers must not change it.
func (h *Harness) State(run string) *sluicev1.RunState {
	h.mu.Lock()
	defer h.mu.Unlock()
	if r := h.runs[run]; r != nil {
		return r.st
	}
	return nil
}

// checkLent fails when a state Load handed out changed in Process's hands: the
// coordinator's cache shares them with every reader.
func (h *Harness) checkLent() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	defer func() { h.lent = nil }()
	for _, l := range h.lent {
		if !proto.Equal(l.st, l.copy) {
			return fmt.Errorf("harness: the state of run %s was changed after Load handed it out", l.copy.GetId())
		}
	}
	return nil
}
