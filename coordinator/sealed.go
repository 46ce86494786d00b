package coordinator

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// A finished run is stored with the events of its last decision still in its outbox; once
// they are all in the events stream, the run is named in a seal: a key of the runs bucket
// listing the finished runs whose events a coordinator published, one write for every run
// finished in sealEvery instead of a rewrite of each run's state. A coordinator reading the
// bucket meets each seal just after the runs it names, so a restart republishes no
// finished run's events and asks the events stream about none of them; a finished run no
// seal names (its coordinator died before writing one) is looked up in the events stream
// (knownPublished), and sealed then.
const (
	sealPrefix = "_sealed"
	sealEvery  = 100 * time.Millisecond
	// sealMaxRuns bounds one seal (run ids are ~20 bytes): far below a KV value's limit.
	sealMaxRuns = 2000
	// sealTimeout bounds the last seal's write when the coordinator stops.
	sealTimeout = 5 * time.Second
)

// isSealKey tells a seal from a run's state in the runs bucket. Run ids never start with
// "_" (NewRunID).
func isSealKey(key string) bool { return strings.HasPrefix(key, sealPrefix+".") }

// sealer batches the finished runs whose events this coordinator published into seals.
type sealer struct {
	kv  jetstream.KeyValue
	ttl time.Duration // a seal outlives the runs it names: they were written before it
	log *slog.Logger
	// key names this coordinator's seals: _sealed.<random>.<n>.
	key string

	mu   sync.Mutex
	runs []string
	n    int
	kick chan struct{}
}

func newSealer(kv jetstream.KeyValue, ttl time.Duration, log *slog.Logger) (*sealer, error) {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("seal key: %w", err)
	}
	return &sealer{kv: kv, ttl: ttl, log: log, key: sealPrefix + "." + hex.EncodeToString(b), kick: make(chan struct{}, 1)}, nil
}

// add queues a finished run for the next seal.
func (s *sealer) add(run string) {
	s.mu.Lock()
	s.runs = append(s.runs, run)
	s.mu.Unlock()
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// run writes a seal every sealEvery while runs finish, and the last one when ctx ends.
func (s *sealer) run(ctx context.Context) {
	last := func() {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), sealTimeout)
		defer cancel()
		s.flush(fctx)
	}
	for {
		select {
		case <-ctx.Done():
			last()
			return
		case <-s.kick:
		}
		select {
		case <-ctx.Done():
			last()
			return
		case <-time.After(sealEvery):
		}
		s.flush(ctx)
	}
}

// flush writes the queued runs as seals. Runs a failed write named stay unsealed: the next
// coordinator to load them asks the events stream instead.
func (s *sealer) flush(ctx context.Context) {
	s.mu.Lock()
	runs := s.runs
	s.runs = nil
	s.mu.Unlock()
	if err := s.write(ctx, runs); err != nil {
		s.log.Warn("seal finished runs", "err", err)
	}
}

// write stores runs as seals of at most sealMaxRuns each.
func (s *sealer) write(ctx context.Context, runs []string) error {
	var errs []error
	for len(runs) > 0 {
		n := min(len(runs), sealMaxRuns)
		s.n++
		key := fmt.Sprintf("%s.%d", s.key, s.n)
		if _, err := s.kv.Create(ctx, key, []byte(strings.Join(runs[:n], "\n")), jetstream.KeyTTL(s.ttl)); err != nil {
			errs = append(errs, fmt.Errorf("seal %s (%d runs): %w", key, n, err))
		}
		runs = runs[n:]
	}
	return errors.Join(errs...)
}

// sealedRuns parses a seal's value.
func sealedRuns(value []byte) []string {
	if len(value) == 0 {
		return nil
	}
	return strings.Split(string(value), "\n")
}

// SealRuns stores a seal naming runs whose events are all in the events stream, as a
// coordinator does once it has published them. For tools that fill a runs bucket the way a
// working fleet leaves it (sluice bench).
func SealRuns(ctx context.Context, kv jetstream.KeyValue, ttl time.Duration, runs []string) error {
	s, err := newSealer(kv, ttl, slog.New(slog.DiscardHandler))
	if err != nil {
		return err
	}
	return s.write(ctx, runs)
}
