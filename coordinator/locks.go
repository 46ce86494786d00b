package coordinator

import (
	"context"
	"errors"
	"strings"
	"sync"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluice-ci/sluice/coordinator/decide"
)

// Concurrency groups: a stage with `concurrency: {group: G}` runs only while it holds the
// key G of the locks bucket, whose value names the holder ("<run>/<stage>"). KV create is
// the arbiter between coordinators; a lock's deletion wakes the oldest waiter of its group.

type lockVerb int

const (
	lockAcquire lockVerb = iota
	lockRelease
	lockWake
)

type lockReq struct {
	verb lockVerb
	run  string
	op   decide.LockOp
}

// locker serialises lock work off the lanes: lanes only queue requests, so a lane never
// waits on a lock and the locker may feed grants back to the lanes.
type locker struct {
	mu    sync.Mutex
	queue []lockReq
	wake  chan struct{}
}

func newLocker() *locker { return &locker{wake: make(chan struct{}, 1)} }

func (l *locker) push(r lockReq) {
	l.mu.Lock()
	l.queue = append(l.queue, r)
	l.mu.Unlock()
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

func (l *locker) take() []lockReq {
	l.mu.Lock()
	defer l.mu.Unlock()
	q := l.queue
	l.queue = nil
	return q
}

func holder(run, stage string) string { return run + "/" + stage }

// runLocks serves lock requests and turns deletions in the locks bucket into wake-ups.
func (c *Coordinator) runLocks(ctx context.Context) error {
	w, err := c.lockKV.WatchAll(ctx, jetstream.UpdatesOnly())
	if err != nil {
		return err
	}
	defer func() { _ = w.Stop() }()
	for {
		select {
		case <-ctx.Done():
			return nil
		case e, ok := <-w.Updates():
			if !ok {
				return errors.New("locks watcher closed")
			}
			if e != nil && e.Operation() != jetstream.KeyValuePut {
				c.locker.push(lockReq{verb: lockWake, op: decide.LockOp{Group: e.Key()}})
			}
		case <-c.locker.wake:
			for _, r := range c.locker.take() {
				c.lockStep(ctx, r)
			}
		}
	}
}

func (c *Coordinator) lockStep(ctx context.Context, r lockReq) {
	switch r.verb {
	case lockAcquire:
		c.acquire(ctx, r.run, r.op)
	case lockRelease:
		entry, err := c.lockKV.Get(ctx, r.op.Group)
		if err == nil && string(entry.Value()) == holder(r.run, r.op.Stage) {
			if err := c.lockKV.Delete(ctx, r.op.Group, jetstream.LastRevision(entry.Revision())); err != nil {
				c.log.Warn("release lock", "group", r.op.Group, "err", err)
			}
		}
		c.wakeOldest(ctx, r.op.Group)
	case lockWake:
		c.wakeOldest(ctx, r.op.Group)
	}
}

// acquire takes the group's lock for run's stage, or leaves it waiting for a wake-up.
func (c *Coordinator) acquire(ctx context.Context, run string, op decide.LockOp) {
	want := holder(run, op.Stage)
	_, err := c.lockKV.Create(ctx, op.Group, []byte(want))
	if errors.Is(err, jetstream.ErrKeyExists) {
		entry, gerr := c.lockKV.Get(ctx, op.Group)
		if gerr != nil || string(entry.Value()) != want {
			return
		}
		err = nil // already ours: a grant that was lost in a crash
	}
	if err != nil {
		c.log.Warn("acquire lock", "group", op.Group, "run", run, "err", err)
		return
	}
	_ = c.submit(ctx, work{run: run, in: decide.LockGranted{Stage: op.Stage}})
}

// wakeOldest offers a free group to the stage the lock policy picks (decide.NextHolder).
func (c *Coordinator) wakeOldest(ctx context.Context, group string) {
	if run, stage, ok := decide.NextHolder(c.cache.snapshot(), group); ok {
		c.acquire(ctx, run, decide.LockOp{Group: group, Stage: stage})
	}
}

// reconcileLocks wakes every group with waiters and frees locks whose holder is gone (its
// run ended, or the stage no longer needs it) after a crash lost the release.
func (c *Coordinator) reconcileLocks(ctx context.Context) {
	groups := map[string]bool{}
	for _, g := range decide.WaitedGroups(c.cache.snapshot()) {
		groups[g] = true
	}
	keys, err := c.lockKV.ListKeys(ctx)
	if err == nil {
		for key := range keys.Keys() {
			entry, err := c.lockKV.Get(ctx, key)
			if err != nil {
				continue
			}
			run, stage, _ := strings.Cut(string(entry.Value()), "/")
			st, _, err := c.load(ctx, run)
			if err != nil && !errors.Is(err, ErrNotFound) {
				continue
			}
			switch decide.HolderOf(st, stage) {
			case decide.HolderGone:
				c.log.Info("freeing a stale lock", "group", key, "holder", string(entry.Value()))
				_ = c.lockKV.Delete(ctx, key, jetstream.LastRevision(entry.Revision()))
				groups[key] = true
			case decide.HolderUngranted:
				_ = c.submit(ctx, work{run: run, in: decide.LockGranted{Stage: stage}})
			}
		}
	}
	for g := range groups {
		c.locker.push(lockReq{verb: lockWake, op: decide.LockOp{Group: g}})
	}
}
