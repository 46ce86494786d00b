package coordinator

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-ci/sluice/internal/bus"
	sluicev1 "github.com/sluice-ci/sluice/proto/sluice/v1"
)

// A result counts only when it proves it comes from a holder of its task. Every task
// carries a lease, HMAC(lease key, task identity), that only the coordinators (who hold the
// key, in a bucket no other role may read) can compute and only the workers of the task's
// kind can read (the server lets them pull nothing else). The worker signs the bytes of
// each result with it. A result with no valid proof, or published on another run's subject,
// is dropped and counted, and the log names its publisher, which the server's permissions
// write into the result's subject.

// leaseKeyName is the key of the lease key in the secrets bucket.
const leaseKeyName = "lease-v1"

// openLeaseKey reads the coordinators' lease key, creating it if this is the first
// coordinator of the fleet. Every coordinator must use the same key: a peer checks the
// results of tasks this one dispatched.
func openLeaseKey(ctx context.Context, kv jetstream.KeyValue) ([]byte, error) {
	entry, err := kv.Get(ctx, leaseKeyName)
	if err == nil {
		return entry.Value(), nil
	}
	if !errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, fmt.Errorf("read the lease key: %w", err)
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("make a lease key: %w", err)
	}
	if _, err := kv.Create(ctx, leaseKeyName, key); err != nil {
		if !errors.Is(err, jetstream.ErrKeyExists) {
			return nil, fmt.Errorf("store the lease key: %w", err)
		}
		// A peer created it first: use theirs.
		if entry, err = kv.Get(ctx, leaseKeyName); err != nil {
			return nil, fmt.Errorf("read the lease key: %w", err)
		}
		return entry.Value(), nil
	}
	return key, nil
}

// lease is the secret of the task with this identity.
func (c *Coordinator) lease(run, stage string, attempt, shard, rolloutSeq int32) []byte {
	m := hmac.New(sha256.New, c.leaseKey)
	m.Write([]byte(bus.LeaseID(run, stage, attempt, shard, rolloutSeq)))
	return m.Sum(nil)
}

// ResultStats counts the results the coordinator dropped before deciding on them.
type ResultStats struct {
	// Forged results had no valid proof of holding their task.
	Forged int64
	// Mismatched results named another run in their payload than in their subject.
	Mismatched int64
	// Undecodable results did not decode.
	Undecodable int64
}

type resultCounters struct{ forged, mismatched, undecodable atomic.Int64 }

// Stats returns what the coordinator has dropped so far.
func (c *Coordinator) Stats() ResultStats {
	return ResultStats{Forged: c.rejected.forged.Load(), Mismatched: c.rejected.mismatched.Load(), Undecodable: c.rejected.undecodable.Load()}
}

// errResult says why a result message is dropped unread.
type errResult struct {
	counter *atomic.Int64
	why     string
}

func (e *errResult) Error() string { return e.why }

// admitResult decodes a result message and checks it: its subject's run is its payload's,
// and its proof is valid for the task it answers. The error names the reason.
func (c *Coordinator) admitResult(msg jetstream.Msg) (*sluicev1.Result, bus.Identity, error) {
	run, publisher, ok := c.cfg.Names.ParseResult(msg.Subject())
	if !ok {
		return nil, publisher, &errResult{&c.rejected.undecodable, "not a result subject"}
	}
	var r sluicev1.Result
	if err := proto.Unmarshal(msg.Data(), &r); err != nil || r.GetRunId() == "" {
		return nil, publisher, &errResult{&c.rejected.undecodable, fmt.Sprintf("undecodable result (%v)", err)}
	}
	if r.GetRunId() != run {
		return &r, publisher, &errResult{&c.rejected.mismatched, fmt.Sprintf("published on run %s's subject but names run %s", run, r.GetRunId())}
	}
	lease := c.lease(r.GetRunId(), r.GetStage(), r.GetAttempt(), r.GetShardIndex(), r.GetRolloutSeq())
	if err := bus.CheckProof(lease, msg.Data(), msg.Headers().Get(bus.HeaderProof)); err != nil {
		return &r, publisher, &errResult{&c.rejected.forged, "forged: " + err.Error()}
	}
	return &r, publisher, nil
}
