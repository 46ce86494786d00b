package workers

import (
	"context"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/sluice-ci/sluice/internal/bus"
	"github.com/sluice-ci/sluice/internal/version"
	sluicev1 "github.com/sluice-ci/sluice/proto/sluice/v1"
)

// heartbeatEvery is how often a worker rewrites its heartbeat: six chances inside the
// bucket's TTL before a live worker would drop off the list.
const heartbeatEvery = bus.WorkersTTL / 6

// announce keeps a heartbeat per kind in the workers bucket (sluice workers list) until ctx
// ends, then removes it. It publishes to the keys' subjects rather than through a KV handle:
// a worker may write its own keys and nothing else of the bucket.
func (w *Worker) announce(ctx context.Context) {
	started := timestamppb.Now()
	beat := func(del bool) {
		counts := w.inFlightByKind()
		for kind := range w.handlers {
			key := w.c.Names.WorkerKey(kind.Slug(), w.id.Name, bus.Tokenize(w.c.ID))
			msg := nats.NewMsg("$KV." + w.c.Names.WorkersBucket() + "." + key)
			if del {
				msg.Header.Set("KV-Operation", "DEL")
			} else {
				info := &sluicev1.WorkerInfo{
					Id: w.c.ID, User: w.id.Name, Kind: kind, Pool: w.c.Pool, Slots: int32(w.c.Concurrency),
					InFlight: int32(counts[kind]), Version: version.String(), StartedAt: started, SeenAt: timestamppb.Now(),
				}
				msg.Data, _ = proto.Marshal(info)
			}
			pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), publishTimeout)
			if _, err := w.js.PublishMsg(pctx, msg, jetstream.WithExpectStream(bus.KVStream(w.c.Names.WorkersBucket()))); err != nil {
				w.log.Debug("heartbeat not recorded", "key", key, "err", err)
			}
			cancel()
		}
	}
	tick := time.NewTicker(heartbeatEvery)
	defer tick.Stop()
	for {
		beat(false)
		select {
		case <-ctx.Done():
			beat(true)
			return
		case <-tick.C:
		}
	}
}

func (w *Worker) inFlightByKind() map[sluicev1.StageKind]int {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := map[sluicev1.StageKind]int{}
	for f := range w.inflight {
		out[f.task.GetKind()]++
	}
	return out
}
