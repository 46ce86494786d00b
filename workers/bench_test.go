package workers

import (
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"

	sluicev1 "github.com/sluice-ci/sluice/proto/sluice/v1"
)

// BenchmarkNoopTask measures the worker's per-task overhead: a task without steps goes
// through STARTED, logs, FINAL and ack. Tasks are queued first, then drained by a worker with
// four slots; the rate is reported as tasks/s.
func BenchmarkNoopTask(b *testing.B) {
	h := newHarness(b)
	var finals atomic.Int64
	done := make(chan struct{})
	sub, err := h.env.NC.Subscribe(h.names.AllResults(), func(m *nats.Msg) {
		r := &sluicev1.Result{}
		if proto.Unmarshal(m.Data, r) == nil && r.Phase == sluicev1.ResultPhase_RESULT_PHASE_FINAL {
			if finals.Add(1) == int64(b.N) {
				close(done)
			}
		}
	})
	if err != nil {
		b.Fatal(err)
	}
	defer sub.Unsubscribe()
	for i := range b.N {
		h.publish(b, newTask("bench"+strconv.Itoa(i)))
	}
	b.ResetTimer()
	start := time.Now()
	h.start(b, Config{Concurrency: 4})
	<-done
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "tasks/s")
}
