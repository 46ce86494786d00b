package workers

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
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

// logSink batches a task's output into LogChunks on Names.Log(run, stage). It keeps every
// stream's output in whole lines, so that the worker's own lines never land inside a step's
// line and no chunk boundary splits a line that fits in one; a step's unterminated last line
// goes out when the step ends (Flush) or grows past a chunk. The steps' streams together may
// write at most limit bytes; the rest is counted and dropped, with a marker, so one stage
// cannot crowd other runs out of the logs stream. Publishes are asynchronous; close waits
// for their acks, so a final result is only sent after the logs it summarises are stored
// (or known lost).
type logSink struct {
	js      jetstream.JetStream
	subject string
	task    *sluicev1.Task
	limit   int64

	mu      sync.Mutex
	segs    []logSegment // whole lines in write order; consecutive lines of one stream share a segment
	partial map[string][]byte
	size    int
	timer   *time.Timer
	closed  bool
	pending []jetstream.PubAckFuture
	sent    int
	errs    []error
	// written counts the steps' bytes kept; dropped those past the limit.
	written, dropped int64
	// truncated is set once the marker of the limit has been written.
	truncated bool
}

type logSegment struct {
	stream string
	data   []byte
	at     time.Time
}

// DefaultLogLimit bounds what the steps of one task may write to the logs stream.
const DefaultLogLimit = 8 << 20

func newLogSink(js jetstream.JetStream, names bus.Names, t *sluicev1.Task, limit int64) *logSink {
	if limit <= 0 {
		limit = DefaultLogLimit
	}
	return &logSink{js: js, subject: names.Log(t.GetRunId(), t.GetStage()), task: t, limit: limit, partial: map[string][]byte{}}
}

// writer returns an io.Writer for one stream; its Flush ends the stream's current line.
func (s *logSink) writer(stream string) io.Writer { return streamWriter{s, stream} }

type streamWriter struct {
	s      *logSink
	stream string
}

func (w streamWriter) Write(p []byte) (int, error) { return w.s.write(w.stream, p) }

// Flush sends the stream's unterminated line, ended by a newline: the step that wrote it
// has ended.
func (w streamWriter) Flush() error {
	w.s.mu.Lock()
	defer w.s.mu.Unlock()
	w.s.endLineLocked(w.stream)
	return nil
}

func (s *logSink) write(stream string, p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, errLogClosed
	}
	n := len(p)
	if stream != StreamSluice {
		if room := s.limit - s.written; int64(len(p)) > room {
			s.dropped += int64(len(p)) - max(room, 0)
			if room > 0 {
				s.written += room
				s.lineLocked(stream, p[:room])
			}
			// The marker comes once, where the output stops, whether the limit fell inside
			// a write or exactly between two.
			if !s.truncated {
				s.truncated = true
				s.endLineLocked(stream)
				s.appendLocked(StreamSluice, []byte(fmt.Sprintf("[sluice] output truncated: the steps wrote more than the %s log limit; the rest is dropped\n", byteSize(s.limit))))
			}
			return n, nil
		}
		s.written += int64(len(p))
	}
	s.lineLocked(stream, p)
	return n, nil
}

// lineLocked adds p to stream's output: whole lines go to the segments, an unterminated
// tail waits for the rest of its line (or for its stream to end). A line longer than a
// chunk goes out a whole chunk at a time; its last piece waits for its newline, so only
// the pieces of such a line ever end a chunk without one.
func (s *logSink) lineLocked(stream string, p []byte) {
	data := append(s.partial[stream], p...)
	if i := bytes.LastIndexByte(data, '\n'); i >= 0 {
		s.appendLocked(stream, data[:i+1])
		data = data[i+1:]
	}
	if n := len(data) / logFlushBytes * logFlushBytes; n > 0 {
		s.appendLocked(stream, data[:n])
		data = data[n:]
	}
	s.partial[stream] = append([]byte(nil), data...)
}

// endLineLocked sends stream's unterminated line with a newline.
func (s *logSink) endLineLocked(stream string) {
	if tail := s.partial[stream]; len(tail) > 0 {
		s.appendLocked(stream, append(tail, '\n'))
		s.partial[stream] = nil
	}
}

func (s *logSink) appendLocked(stream string, data []byte) {
	if n := len(s.segs); n > 0 && s.segs[n-1].stream == stream {
		s.segs[n-1].data = append(s.segs[n-1].data, data...)
	} else {
		s.segs = append(s.segs, logSegment{stream: stream, data: append([]byte(nil), data...), at: time.Now()})
	}
	s.size += len(data)
	switch {
	case s.size >= logFlushBytes:
		s.flushLocked()
	case s.timer == nil:
		s.timer = time.AfterFunc(logFlushEvery, s.timedFlush)
	}
}

func byteSize(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
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
			// Cut after the last whole line that fits, when there is one.
			if i := bytes.LastIndexByte(data[:n], '\n'); i >= 0 && n < len(data) {
				n = i + 1
			}
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
		f, err = s.js.PublishMsgAsync(&nats.Msg{Subject: s.subject, Header: bus.TaskHeader(s.task, 0), Data: b})
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

// close publishes what is buffered, with a line counting the dropped output, and waits for
// every ack (or ctx). The error says how many chunks were not stored and why the first was
// not.
func (s *logSink) close(ctx context.Context) error {
	s.mu.Lock()
	for _, stream := range []string{StreamStdout, StreamStderr, StreamSluice} {
		s.endLineLocked(stream)
	}
	if s.dropped > 0 {
		s.appendLocked(StreamSluice, []byte(fmt.Sprintf("[sluice] %d bytes of output dropped after the first %s (the worker's --log-limit)\n", s.dropped, byteSize(s.limit))))
	}
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
