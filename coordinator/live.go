package coordinator

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	sluicev1 "github.com/sluice-ci/sluice/proto/sluice/v1"
)

// The dashboard is live: its pages hold a server-sent events stream that sends a fresh
// snapshot (the run, or the runs list) whenever the cache takes a new state of it.

//go:embed dashboard.js
var dashboardJS string

const (
	// watchCoalesce gathers the events of a burst into one snapshot.
	watchCoalesce = 150 * time.Millisecond
	// watchKeepAlive keeps proxies from closing a quiet stream.
	watchKeepAlive = 15 * time.Second
	// maxLogBytes is how much of a stage's output the dashboard shows: its end.
	maxLogBytes = 256 << 10
)

func serveDashboardJS(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	_, _ = io.WriteString(w, dashboardJS)
}

// serveSnapshots streams snapshot() as server-sent events ("snapshot", protojson) now and
// after each burst of changes to run ("": any run), until the client goes or snapshot says
// the stream is over.
func (c *Coordinator) serveSnapshots(w http.ResponseWriter, r *http.Request, run string, snapshot func(context.Context) (proto.Message, bool, error)) {
	flusher, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	changed, stop := c.cache.watch(run)
	defer stop()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Accel-Buffering", "no")
	keepAlive := time.NewTicker(watchKeepAlive)
	defer keepAlive.Stop()
	for {
		m, done, err := snapshot(r.Context())
		if err != nil {
			fmt.Fprintf(w, "event: failure\ndata: %s\n\n", strings.ReplaceAll(err.Error(), "\n", " "))
			flusher.Flush()
			return
		}
		data, err := protojson.Marshal(m)
		if err != nil {
			return
		}
		fmt.Fprintf(w, "event: snapshot\ndata: %s\n\n", data)
		flusher.Flush()
		if done {
			fmt.Fprint(w, "event: end\ndata: {}\n\n")
			flusher.Flush()
			return
		}
	wait:
		for {
			select {
			case <-r.Context().Done():
				return
			case <-keepAlive.C:
				fmt.Fprint(w, ": keep-alive\n\n")
				flusher.Flush()
			case <-changed:
				// A short pause lets a burst of decisions become one snapshot.
				select {
				case <-time.After(watchCoalesce):
				case <-r.Context().Done():
					return
				}
				break wait
			}
		}
	}
}

func (c *Coordinator) watchRun(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	st, err := c.GetRun(r.Context(), id)
	if err != nil {
		writeHTTPError(w, err)
		return
	}
	c.serveSnapshots(w, r, st.GetId(), func(ctx context.Context) (proto.Message, bool, error) {
		st, err := c.GetRun(ctx, id)
		if err != nil {
			return nil, false, err
		}
		return &sluicev1.GetRunResponse{Run: st}, st.GetStatus().Terminal(), nil
	})
}

func (c *Coordinator) watchRuns(w http.ResponseWriter, r *http.Request) {
	c.serveSnapshots(w, r, "", func(context.Context) (proto.Message, bool, error) {
		return &sluicev1.ListRunsResponse{Runs: c.ListRuns(&sluicev1.ListRunsRequest{Limit: 100})}, false, nil
	})
}

// serveLogs writes the end of a stage's output (its last maxLogBytes), every attempt and
// shard marked, as text.
func (c *Coordinator) serveLogs(w http.ResponseWriter, r *http.Request) {
	id, stage := r.PathValue("id"), r.PathValue("stage")
	st, err := c.GetRun(r.Context(), id)
	if err != nil {
		writeHTTPError(w, err)
		return
	}
	if s, _ := stageOf(st, stage); s == nil {
		writeHTTPError(w, fmt.Errorf("%w: run %s has no stage %q", ErrNotFound, id, stage))
		return
	}
	text, err := c.stageLogs(r.Context(), id, stage)
	if err != nil {
		writeHTTPError(w, err)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	_, _ = io.WriteString(w, text)
}

func (c *Coordinator) stageLogs(ctx context.Context, run, stage string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	logs, err := c.js.Stream(ctx, c.cfg.Names.LogsStream())
	if err != nil {
		return "", fmt.Errorf("open %s: %w", c.cfg.Names.LogsStream(), err)
	}
	subject := c.cfg.Names.Log(run, stage)
	last, err := logs.GetLastMsgForSubject(ctx, subject)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("logs of %s/%s: %w", run, stage, err)
	}
	cons, err := logs.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}})
	if err != nil {
		return "", fmt.Errorf("logs of %s/%s: %w", run, stage, err)
	}
	var b strings.Builder
	type part struct{ attempt, shard int32 }
	var cur part
	for {
		msg, err := cons.Next(jetstream.FetchContext(ctx))
		if err != nil {
			return "", fmt.Errorf("logs of %s/%s: %w", run, stage, err)
		}
		var chunk sluicev1.LogChunk
		if proto.Unmarshal(msg.Data(), &chunk) == nil {
			if p := (part{chunk.GetAttempt(), chunk.GetShardIndex()}); p != cur {
				fmt.Fprintf(&b, "--- attempt %d, shard %d\n", p.attempt, p.shard+1)
				cur = p
			}
			b.Write(chunk.GetData())
		}
		md, err := msg.Metadata()
		if err != nil || md.Sequence.Stream >= last.Sequence {
			break
		}
	}
	text := b.String()
	if len(text) > maxLogBytes {
		text = "(earlier output cut)\n" + text[len(text)-maxLogBytes:]
	}
	return text, nil
}
