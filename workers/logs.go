package workers

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/sluice-ci/sluice/internal/bus"
	sluicev1 "github.com/sluice-ci/sluice/proto/sluice/v1"
)

// Log batching: a chunk is published when this much output is buffered, or this long after
// the first unpublished byte, whichever comes first.
const (
	logFlushBytes = 32 << 10
	logFlushEvery = 200 * time.Millisecond
)

// Log stream names of sluicev1.LogChunk.
const (
	StreamStdout = "stdout"
	StreamStderr = "stderr"
	StreamSluice = "sluice"
)

var errLogClosed = errors.New("log closed")

// logSink batches a task's output into LogChunks on Names.Log(run, stage). Publishes are
// asynchronous; close waits for their acks, so a final result is only sent after the logs
// it summarises are stored (or known lost).
type logSink struct {
	js      jetstream.JetStream
	subject string
	task    *sluicev1.Task

	mu      sync.Mutex
	segs    []logSegment // in write order; consecutive writes to one stream share a segment
	size    int
	timer   *time.Timer
	closed  bool
	pending []jetstream.PubAckFuture
	sent    int
	errs    []error
}

type logSegment struct {
	stream string
	data   []byte
	at     time.Time
}

func newLogSink(js jetstream.JetStream, names bus.Names, t *sluicev1.Task) *logSink {
	return &logSink{js: js, subject: names.Log(t.GetRunId(), t.GetStage()), task: t}
}

// taskHeader is a fresh header naming t's run, stage, attempt and shard, so a message can
// be routed without decoding it.
func taskHeader(t *sluicev1.Task) nats.Header {
	h := nats.Header{}
	h.Set(bus.HeaderRun, t.GetRunId())
	h.Set(bus.HeaderStage, t.GetStage())
	h.Set(bus.HeaderAttempt, strconv.Itoa(int(t.GetAttempt())))
	h.Set(bus.HeaderShard, strconv.Itoa(int(t.GetShardIndex())))
	if tp := t.GetTraceparent(); tp != "" {
		h.Set(bus.HeaderTraceparent, tp)
	}
	return h
}

// writer returns an io.Writer for one stream.
func (s *logSink) writer(stream string) io.Writer { return streamWriter{s, stream} }

type streamWriter struct {
	s      *logSink
	stream string
}

func (w streamWriter) Write(p []byte) (int, error) { return w.s.write(w.stream, p) }

func (s *logSink) write(stream string, p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, errLogClosed
	}
	if n := len(s.segs); n > 0 && s.segs[n-1].stream == stream {
		s.segs[n-1].data = append(s.segs[n-1].data, p...)
	} else {
		s.segs = append(s.segs, logSegment{stream: stream, data: append([]byte(nil), p...), at: time.Now()})
	}
	s.size += len(p)
	switch {
	case s.size >= logFlushBytes:
		s.flushLocked()
	case s.timer == nil:
		s.timer = time.AfterFunc(logFlushEvery, s.timedFlush)
	}
	return len(p), nil
}

func (s *logSink) timedFlush() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.timer = nil
	if !s.closed {
		s.flushLocked()
	}
}

// flushLocked publishes the buffered segments, each cut to chunks of at most logFlushBytes,
// and forgets acks that have already arrived so a long task does not accumulate them.
func (s *logSink) flushLocked() {
	if s.timer != nil {
		s.timer.Stop()
		s.timer = nil
	}
	for _, seg := range s.segs {
		for data := seg.data; len(data) > 0; {
			n := min(len(data), logFlushBytes)
			s.publishLocked(seg.stream, data[:n], seg.at)
			data = data[n:]
		}
	}
	s.segs, s.size = s.segs[:0], 0
	live := s.pending[:0]
	for _, f := range s.pending {
		if done, err := settled(f); !done {
			live = append(live, f)
		} else if err != nil {
			s.errs = append(s.errs, err)
		}
	}
	s.pending = live
}

func (s *logSink) publishLocked(stream string, data []byte, at time.Time) {
	chunk := &sluicev1.LogChunk{
		RunId: s.task.GetRunId(), Stage: s.task.GetStage(), Attempt: s.task.GetAttempt(),
		ShardIndex: s.task.GetShardIndex(), Stream: stream, Data: data, Time: timestamppb.New(at),
	}
	b, err := proto.Marshal(chunk)
	if err == nil {
		var f jetstream.PubAckFuture
		f, err = s.js.PublishMsgAsync(&nats.Msg{Subject: s.subject, Header: taskHeader(s.task), Data: b})
		if err == nil {
			s.pending = append(s.pending, f)
		}
	}
	s.sent++
	if err != nil {
		s.errs = append(s.errs, err)
	}
}

// settled reports whether f has its ack, and the publish error if it failed.
func settled(f jetstream.PubAckFuture) (bool, error) {
	select {
	case <-f.Ok():
		return true, nil
	case err := <-f.Err():
		return true, err
	default:
		return false, nil
	}
}

// close publishes what is buffered and waits for every ack (or ctx). The error says how
// many chunks were not stored and why the first was not.
func (s *logSink) close(ctx context.Context) error {
	s.mu.Lock()
	s.flushLocked()
	s.closed = true
	pending, errs, sent := s.pending, s.errs, s.sent
	s.pending = nil
	s.mu.Unlock()

	for _, f := range pending {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			errs = append(errs, err)
		case <-ctx.Done():
			errs = append(errs, fmt.Errorf("waiting for log acks: %w", ctx.Err()))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%d of %d log chunks not stored on %s: %w", len(errs), sent, s.subject, errs[0])
	}
	return nil
}
