package coordinator

import (
	"bytes"
	"slices"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/sluice-ci/sluice/coordinator/decide"
	sluicev1 "github.com/sluice-ci/sluice/proto/sluice/v1"
)

// runCache mirrors the runs bucket: full state of active runs, summaries of all runs, and
// what this coordinator has published for each run.
type runCache struct {
	mu        sync.Mutex
	active    map[string]*cached
	summaries map[string]*sluicev1.RunSummary
	// events is, per run, the highest event seq known to be in the events stream. It
	// outlives the run's active entry: a finished run's state, seen again through the
	// watcher, must not have its events published a second time.
	events map[string]int64
	// watchers are told when a run's state changes (key "": any run's); see watch.
	watchers map[string]map[chan struct{}]struct{}
	// writing holds, encoded, the states this coordinator is storing: the watcher's echo
	// of such a write may come before the write's ack, and need not be decoded (the
	// writer puts the state itself).
	writing map[string][]byte
}

type cached struct {
	st  *sluicev1.RunState
	rev uint64
	// tasks holds the ids of tasks this coordinator published (or republished).
	tasks map[string]struct{}
	wake  time.Time
	// ticking is set while a Tick is queued, so the clock does not flood the lane.
	ticking bool
}

func newRunCache() *runCache {
	return &runCache{active: map[string]*cached{}, summaries: map[string]*sluicev1.RunSummary{}, events: map[string]int64{},
		watchers: map[string]map[chan struct{}]struct{}{}, writing: map[string][]byte{}}
}

func (rc *runCache) get(run string) (*sluicev1.RunState, uint64, bool) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	e, ok := rc.active[run]
	if !ok || e.st == nil {
		return nil, 0, false
	}
	return e.st, e.rev, true
}

// put records a state at a revision unless a newer one is known. States are never mutated
// after put, so readers may share them.
func (rc *runCache) put(run string, st *sluicev1.RunState, rev uint64) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	e := rc.active[run]
	if e != nil && e.st != nil && e.rev >= rev {
		return
	}
	rc.summaries[run] = decide.Summary(st)
	rc.notify(run)
	if st.GetStatus().Terminal() && (len(st.GetOutbox()) == 0 || rc.events[run] >= st.GetEventSeq()) {
		delete(rc.active, run)
		return
	}
	if e == nil {
		e = &cached{tasks: map[string]struct{}{}}
		rc.active[run] = e
	}
	e.st, e.rev = st, rev
	e.wake = decide.NextWake(st)
}

// write marks data as the run's state this coordinator is storing; done ends the mark.
func (rc *runCache) write(run string, data []byte) (done func()) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.writing[run] = data
	return func() {
		rc.mu.Lock()
		defer rc.mu.Unlock()
		delete(rc.writing, run)
	}
}

// echo reports whether data is the state this coordinator is storing for run.
func (rc *runCache) echo(run string, data []byte) bool {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	w, ok := rc.writing[run]
	return ok && bytes.Equal(w, data)
}

// holds reports whether the cache has the run's state at rev or later.
func (rc *runCache) holds(run string, rev uint64) bool {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	e := rc.active[run]
	return e != nil && e.st != nil && e.rev >= rev
}

func (rc *runCache) invalidate(run string) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if e, ok := rc.active[run]; ok {
		e.st, e.rev = nil, 0
	}
}

func (rc *runCache) remove(run string) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.notify(run)
	delete(rc.active, run)
	delete(rc.summaries, run)
	delete(rc.events, run)
}

func (rc *runCache) entry(run string) *cached {
	e := rc.active[run]
	if e == nil {
		e = &cached{tasks: map[string]struct{}{}}
		rc.active[run] = e
	}
	return e
}

func (rc *runCache) markTask(run, id string) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.entry(run).tasks[id] = struct{}{}
}

func (rc *runCache) taskPublished(run, id string) bool {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	e := rc.active[run]
	if e == nil {
		return false
	}
	_, ok := e.tasks[id]
	return ok
}

// markPublished records that the run's events through seq are in the events stream; a
// finished run whose events all are leaves the active runs.
func (rc *runCache) markPublished(run string, seq int64) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.events[run] = max(rc.events[run], seq)
	if e := rc.active[run]; e != nil && e.st != nil && e.st.GetStatus().Terminal() && rc.events[run] >= e.st.GetEventSeq() {
		delete(rc.active, run)
	}
}

// sealed records that a finished run's events are all in the events stream, as a seal
// says: the run leaves the active runs. A run not finished in the cache is left alone (a
// seal names only finished runs, so the cache is behind and the run's final state on its
// way).
func (rc *runCache) sealed(run string) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if e := rc.active[run]; e != nil && e.st != nil && e.st.GetStatus().Terminal() {
		rc.events[run] = max(rc.events[run], e.st.GetEventSeq())
		delete(rc.active, run)
	}
}

// published is the highest event seq of the run known to be in the events stream.
func (rc *runCache) published(run string) int64 {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.events[run]
}

// due returns the active runs whose wake time has passed and marks them ticking.
func (rc *runCache) due(now time.Time) []string {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	var runs []string
	for id, e := range rc.active {
		if !e.ticking && !e.wake.IsZero() && !now.Before(e.wake) {
			e.ticking = true
			runs = append(runs, id)
		}
	}
	return runs
}

func (rc *runCache) ticked(run string) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if e := rc.active[run]; e != nil {
		e.ticking = false
	}
}

// snapshot returns the active runs' states.
func (rc *runCache) snapshot() []*sluicev1.RunState {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	out := make([]*sluicev1.RunState, 0, len(rc.active))
	for _, e := range rc.active {
		if e.st != nil {
			out = append(out, e.st)
		}
	}
	return out
}

// entries returns the active runs' states with their revisions.
func (rc *runCache) entries() []decide.Stored {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	out := make([]decide.Stored, 0, len(rc.active))
	for run, e := range rc.active {
		if e.st != nil {
			out = append(out, decide.Stored{State: e.st, Rev: e.rev, Published: rc.events[run]})
		}
	}
	return out
}

func (rc *runCache) activeCount() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return len(rc.active)
}

// list returns summaries newest first, optionally of one pipeline.
func (rc *runCache) list(pipeline string, limit int) []*sluicev1.RunSummary {
	rc.mu.Lock()
	out := make([]*sluicev1.RunSummary, 0, len(rc.summaries))
	for _, s := range rc.summaries {
		if pipeline == "" || s.GetPipeline() == pipeline {
			out = append(out, proto.Clone(s).(*sluicev1.RunSummary))
		}
	}
	rc.mu.Unlock()
	slices.SortFunc(out, func(a, b *sluicev1.RunSummary) int {
		if c := b.GetCreatedAt().AsTime().Compare(a.GetCreatedAt().AsTime()); c != 0 {
			return c
		}
		return strings.Compare(b.GetId(), a.GetId())
	})
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out
}

// watch returns a channel that receives (at most one pending signal) when the state of run
// changes, or of any run when run is ""; stop ends it. The dashboard's live pages use it: it
// hears this coordinator's decisions and, through the KV watcher, its peers'.
func (rc *runCache) watch(run string) (changed <-chan struct{}, stop func()) {
	ch := make(chan struct{}, 1)
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if rc.watchers[run] == nil {
		rc.watchers[run] = map[chan struct{}]struct{}{}
	}
	rc.watchers[run][ch] = struct{}{}
	return ch, func() {
		rc.mu.Lock()
		defer rc.mu.Unlock()
		delete(rc.watchers[run], ch)
		if len(rc.watchers[run]) == 0 {
			delete(rc.watchers, run)
		}
	}
}

// notify signals the watchers of run and of every run; rc.mu is held.
func (rc *runCache) notify(run string) {
	for _, key := range []string{run, ""} {
		for ch := range rc.watchers[key] {
			select {
			case ch <- struct{}{}:
			default:
			}
		}
	}
}
