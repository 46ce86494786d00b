package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluice-ci/sluice/internal/bus"
)

// The protocol floor runs the messages Sluice's wire protocol sends for a run, with none of
// Sluice's logic: a submit request and its reply, the run's state created and then
// compare-and-swapped in a KV bucket once per result (and watched back, as a coordinator
// does to follow its peers), each task published with its id and its ack awaited, pulled,
// answered by a log chunk and a result (each awaited) and acked, each result pulled and
// acked, and the events of each decision, each acked. A test holds it to Sluice's count of
// messages through the server per run. What Sluice takes beyond it is its own cost; what
// the protocol floor takes is the protocol's, on this host.

const (
	// A run's state is about what Sluice stores for a no-op run: a base and a part per stage.
	protocolStateBytes = 512
	protocolStageBytes = 256
	// The size of a task, a result and an event; a log chunk is half of it.
	protocolPayloadBytes = 256
	// As many lanes as the coordinator decides in by default.
	protocolLanes         = 32
	protocolRequestWithin = 10 * time.Second
)

// ProtocolStreams are the streams the protocol floor makes under prefix, its KV bucket's
// last. Like FloorStreams they stay until the benchmark ends.
func ProtocolStreams(prefix string) []string {
	return []string{prefix + "_PROTO_TASKS", prefix + "_PROTO_RESULTS", prefix + "_PROTO_LOGS", prefix + "_PROTO_EVENTS", "KV_" + protocolBucket(prefix)}
}

func protocolBucket(prefix string) string { return prefix + "_proto_runs" }

// protocolFloor runs the phases' runs through the protocol floor: as many 1-stage runs and
// 7-stage chains, as many in flight, and as many 7-stage chains one at a time.
func protocolFloor(ctx context.Context, s *server, o Options, rep *Report) error {
	chains := max(1, o.Runs/7)
	phase(o, "protocol floor: Sluice's messages without its logic: %d 1-stage runs and %d 7-stage chains, %d in flight; %d chains one at a time",
		o.Runs, chains, o.InFlight, o.Sequential)
	p, err := startProtocol(ctx, s)
	if err != nil {
		return err
	}
	defer p.stop()
	if _, err := p.sustain(ctx, 1, min(o.InFlight, o.Runs), o.InFlight); err != nil {
		return fmt.Errorf("warm-up: %w", err)
	}
	if rep.ProtocolStagesPerS, err = p.sustain(ctx, 1, o.Runs, o.InFlight); err != nil {
		return err
	}
	if rep.ProtocolChainStagesPerS, err = p.sustain(ctx, 7, chains, o.InFlight); err != nil {
		return err
	}
	lat, err := p.sequential(ctx, 7, o.Sequential)
	if err != nil {
		return err
	}
	rep.ProtocolDAG7P50Us = lat.P(0.5)
	phase(o, "  1-stage runs %.0f stages/s, chains %.0f stages/s, one chain at a time p50 %.0f us",
		rep.ProtocolStagesPerS, rep.ProtocolChainStagesPerS, rep.ProtocolDAG7P50Us)
	return nil
}

// protocol is the protocol floor's coordinator and worker, ready for runs. Each has a
// connection of its own, as Sluice's do; the submitter uses the benchmark's.
type protocol struct {
	client *nats.Conn
	coord  peer
	worker peer
	kv     jetstream.KeyValue
	prefix string
	lanes  []chan protocolInput
	slots  chan jetstream.Msg
	ends   *waitRuns
	ids    atomic.Int64
	// runs is each run's stored revision and stage count; a lane alone touches its runs.
	mu   sync.Mutex
	runs map[string]*protocolRun
	// stops end the consumers and subscriptions; done then ends the lanes and slots (a
	// callback still running hands them nothing once it is closed), and wg waits for them.
	stops []func()
	done  chan struct{}
	wg    sync.WaitGroup
	conns []*nats.Conn
}

type peer struct {
	nc *nats.Conn
	js jetstream.JetStream
}

func connectPeer(ctx context.Context, s *server, name string) (peer, error) {
	nc, err := bus.Connect(ctx, bus.ConnectOptions{URL: s.url, CredsFile: s.creds, Name: "sluice bench protocol floor " + name})
	if err != nil {
		return peer{}, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return peer{}, fmt.Errorf("jetstream: %w", err)
	}
	return peer{nc: nc, js: js}, nil
}

type protocolRun struct {
	rev    uint64
	stages int
}

// protocolInput is a submit request (stages > 0) or a result, for the lane of its run.
type protocolInput struct {
	run    string
	stage  int
	stages int
	msg    *nats.Msg     // the submit request
	result jetstream.Msg // the result
}

func startProtocol(ctx context.Context, s *server) (*protocol, error) {
	p := &protocol{client: s.nc, prefix: s.names.Prefix + ".proto", runs: map[string]*protocolRun{}, done: make(chan struct{})}
	ok := false
	defer func() {
		if !ok {
			p.stop()
		}
	}()
	for _, c := range []struct {
		p    *peer
		name string
	}{{&p.coord, "coordinator"}, {&p.worker, "worker"}} {
		var err error
		if *c.p, err = connectPeer(ctx, s, c.name); err != nil {
			return nil, err
		}
		p.conns = append(p.conns, c.p.nc)
	}
	names := ProtocolStreams(s.names.Prefix)
	for _, cfg := range []jetstream.StreamConfig{
		{Name: names[0], Subjects: []string{p.prefix + ".task.>"}, Retention: jetstream.WorkQueuePolicy, Storage: jetstream.FileStorage, Duplicates: 10 * time.Minute},
		{Name: names[1], Subjects: []string{p.prefix + ".result.>"}, Storage: jetstream.FileStorage},
		{Name: names[2], Subjects: []string{p.prefix + ".log.>"}, Storage: jetstream.FileStorage},
		{Name: names[3], Subjects: []string{p.prefix + ".event.>"}, Storage: jetstream.FileStorage},
	} {
		if _, err := s.js.CreateStream(ctx, cfg); err != nil {
			return nil, fmt.Errorf("protocol floor stream %s: %w", cfg.Name, err)
		}
	}
	kv, err := p.coord.js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: protocolBucket(s.names.Prefix), Storage: jetstream.FileStorage})
	if err != nil {
		return nil, fmt.Errorf("protocol floor bucket: %w", err)
	}
	p.kv = kv
	// The coordinator follows the bucket, as Sluice's does; what it reads is dropped.
	w, err := kv.WatchAll(ctx)
	if err != nil {
		return nil, fmt.Errorf("protocol floor watch: %w", err)
	}
	p.stops = append(p.stops, func() { _ = w.Stop() })
	p.wg.Go(func() {
		for range w.Updates() {
		}
	})
	if p.ends, err = newWaitRuns(s.nc, p.prefix+".event.*.run.>"); err != nil {
		return nil, err
	}
	p.stops = append(p.stops, func() { _ = p.ends.sub.Unsubscribe() })

	p.lanes = make([]chan protocolInput, protocolLanes)
	for i := range p.lanes {
		p.lanes[i] = make(chan protocolInput, 256)
		p.wg.Go(func() {
			for {
				select {
				case <-p.done:
					return
				case in := <-p.lanes[i]:
					p.decide(ctx, in)
				}
			}
		})
	}
	p.slots = make(chan jetstream.Msg)
	for range workerSlots {
		p.wg.Go(func() {
			for {
				select {
				case <-p.done:
					return
				case m := <-p.slots:
					p.work(ctx, m)
				}
			}
		})
	}
	sub, err := p.coord.nc.Subscribe(p.prefix+".submit", func(m *nats.Msg) {
		run, stages, err := parseProtocolPayload(m.Data)
		if err != nil {
			return
		}
		p.hand(run, protocolInput{run: run, stages: stages, msg: m})
	})
	if err != nil {
		return nil, fmt.Errorf("protocol floor submit: %w", err)
	}
	p.stops = append(p.stops, func() { _ = sub.Unsubscribe() })
	for _, c := range []struct {
		js              jetstream.JetStream
		stream, durable string
		pending         int
		handle          func(jetstream.Msg)
	}{
		{p.worker.js, names[0], "w", workerSlots, func(m jetstream.Msg) {
			select {
			case p.slots <- m:
			case <-p.done:
			}
		}},
		{p.coord.js, names[1], "c", 20000, func(m jetstream.Msg) {
			run, stage, err := parseProtocolPayload(m.Data())
			if err != nil {
				_ = m.Term()
				return
			}
			p.hand(run, protocolInput{run: run, stage: stage, result: m})
		}},
	} {
		cons, err := c.js.CreateOrUpdateConsumer(ctx, c.stream, jetstream.ConsumerConfig{Durable: c.durable, AckPolicy: jetstream.AckExplicitPolicy, MaxAckPending: c.pending})
		if err != nil {
			return nil, fmt.Errorf("protocol floor consumer: %w", err)
		}
		cc, err := cons.Consume(c.handle, jetstream.PullMaxMessages(1000))
		if err != nil {
			return nil, fmt.Errorf("protocol floor consume: %w", err)
		}
		p.stops = append(p.stops, cc.Stop)
	}
	ok = true
	return p, nil
}

func (p *protocol) stop() {
	for _, stop := range p.stops {
		stop()
	}
	close(p.done)
	p.wg.Wait()
	for _, nc := range p.conns {
		nc.Close()
	}
}

// hand queues in for the lane of its run: one lane decides all of a run's inputs.
func (p *protocol) hand(run string, in protocolInput) {
	h := fnv.New32a()
	_, _ = h.Write([]byte(run))
	select {
	case p.lanes[h.Sum32()%uint32(len(p.lanes))] <- in:
	case <-p.done:
	}
}

// decide stores the run's next state, then publishes its next task and the decision's events.
func (p *protocol) decide(ctx context.Context, in protocolInput) {
	p.mu.Lock()
	r := p.runs[in.run]
	p.mu.Unlock()
	var events []string
	next := -1
	if in.msg != nil {
		r = &protocolRun{stages: in.stages}
		rev, err := p.kv.Create(ctx, in.run, make([]byte, protocolStateBytes+protocolStageBytes*in.stages))
		if err != nil {
			_ = in.msg.Respond([]byte("store the run: " + err.Error()))
			return
		}
		r.rev, next, events = rev, 0, []string{"run.submitted", "stage.queued"}
		p.mu.Lock()
		p.runs[in.run] = r
		p.mu.Unlock()
	} else {
		if r == nil {
			_ = in.result.Term()
			return
		}
		rev, err := p.kv.Update(ctx, in.run, make([]byte, protocolStateBytes+protocolStageBytes*r.stages), r.rev)
		if err != nil {
			_ = in.result.Nak()
			return
		}
		r.rev = rev
		events = []string{"stage.started", "stage.passed", "run.passed"}
		if in.stage+1 < r.stages {
			next, events[2] = in.stage+1, "stage.queued"
		} else {
			p.mu.Lock()
			delete(p.runs, in.run)
			p.mu.Unlock()
		}
	}
	var acks []jetstream.PubAckFuture
	if next >= 0 {
		m := p.msg(p.prefix+".task."+in.run, in.run, next, in.run+"/"+strconv.Itoa(next))
		if f, err := p.coord.js.PublishMsgAsync(m); err == nil {
			acks = append(acks, f)
		}
	}
	seq := p.ids.Add(int64(len(events)))
	for i, typ := range events {
		m := p.msg(p.prefix+".event."+in.run+"."+typ, in.run, 0, strconv.FormatInt(seq+int64(i), 10))
		m.Header.Set("ce-subject", in.run)
		if f, err := p.coord.js.PublishMsgAsync(m); err == nil {
			acks = append(acks, f)
		}
	}
	for _, f := range acks {
		select {
		case <-f.Ok():
		case <-f.Err():
		case <-ctx.Done():
			return
		}
	}
	if in.msg != nil {
		_ = in.msg.Respond([]byte(in.run))
	} else {
		_ = in.result.Ack()
	}
}

// work answers a task as a worker does: its log, then its result, each stored, then the ack.
func (p *protocol) work(ctx context.Context, task jetstream.Msg) {
	run, stage, err := parseProtocolPayload(task.Data())
	if err != nil {
		_ = task.Term()
		return
	}
	ctx, cancel := context.WithTimeout(ctx, protocolRequestWithin)
	defer cancel()
	if _, err := p.worker.js.Publish(ctx, p.prefix+".log."+run+"."+strconv.Itoa(stage), make([]byte, protocolPayloadBytes/2)); err != nil {
		_ = task.Nak()
		return
	}
	if _, err := p.worker.js.PublishMsg(ctx, p.msg(p.prefix+".result."+run, run, stage, run+"/"+strconv.Itoa(stage))); err != nil {
		_ = task.Nak()
		return
	}
	_ = task.Ack()
}

// msg is a message of the protocol's size carrying its run and stage, with the id the
// server deduplicates it by.
func (p *protocol) msg(subject, run string, stage int, id string) *nats.Msg {
	m := nats.NewMsg(subject)
	m.Data = protocolPayload(run, stage)
	m.Header.Set(nats.MsgIdHdr, id)
	return m
}

func protocolPayload(run string, stage int) []byte {
	b := make([]byte, 0, protocolPayloadBytes)
	b = fmt.Appendf(b, "%s %d ", run, stage)
	return append(b, make([]byte, max(0, protocolPayloadBytes-len(b)))...)
}

func parseProtocolPayload(data []byte) (run string, n int, err error) {
	f := bytes.Fields(bytes.TrimRight(data, "\x00"))
	if len(f) != 2 {
		return "", 0, errors.New("protocol floor: bad payload")
	}
	n, err = strconv.Atoi(string(f[1]))
	return string(f[0]), n, err
}

// submit starts a run of stages and returns once it has passed.
func (p *protocol) submit(ctx context.Context, stages int) error {
	ctx, cancel := context.WithTimeout(ctx, runTimeout)
	defer cancel()
	run := "p" + strconv.FormatInt(p.ids.Add(1), 36) + strconv.FormatInt(time.Now().UnixNano()%1e6, 36)
	reply, err := p.client.RequestWithContext(ctx, p.prefix+".submit", protocolPayload(run, stages))
	if err != nil {
		return fmt.Errorf("protocol floor submit: %w", err)
	}
	if string(reply.Data) != run {
		return fmt.Errorf("protocol floor submit: %s", reply.Data)
	}
	if err := p.ends.wait(ctx, run); err != nil {
		return fmt.Errorf("protocol floor run %s: %w", run, err)
	}
	return nil
}

// sustain keeps inflight runs of stages going until runs have passed, and returns stages/s.
func (p *protocol) sustain(ctx context.Context, stages, runs, inflight int) (float64, error) {
	elapsed, err := keepGoing(ctx, runs, inflight, func(ctx context.Context) error { return p.submit(ctx, stages) })
	if err != nil {
		return 0, err
	}
	return float64(stages*runs) / elapsed.Seconds(), nil
}

// sequential times n runs of stages, one at a time, from submit to passed.
func (p *protocol) sequential(ctx context.Context, stages, n int) (Latencies, error) {
	return timeEach(ctx, n, func(ctx context.Context) error { return p.submit(ctx, stages) })
}
