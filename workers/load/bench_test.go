package load_test

import (
	"fmt"
	"net/http/httptest"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/sluice-ci/sluice/examples/app"
	"github.com/sluice-ci/sluice/loadtest"
	sluicev1 "github.com/sluice-ci/sluice/proto/sluice/v1"
	"github.com/sluice-ci/sluice/workers/load"
)

// BenchmarkWorkerOverhead measures what the worker adds to a k6 run (issue 5's target:
// under 1 s plus 2%): the same script with the same load, once directly through the engine
// and once as a load task from publish to final result (fetching the source, starting k6,
// uploading the summary, publishing the result).
func BenchmarkWorkerOverhead(b *testing.B) {
	bin := k6(b)
	f := startFleet(b, load.Handler{K6: bin})
	srv := httptest.NewServer(app.NewHandler("bench"))
	defer srv.Close()
	const vus, duration = 2, 3 * time.Second
	var direct, worker time.Duration
	for i := range b.N {
		start := time.Now()
		if _, err := loadtest.Run(b.Context(), loadtest.Options{
			K6: bin, Script: "../../examples/app/loadtest/api.js", Target: srv.URL, VUs: vus, Duration: duration,
		}); err != nil {
			b.Fatalf("direct run: %v", err)
		}
		direct += time.Since(start)

		start = time.Now()
		res := f.run(b, fmt.Sprintf("bench%d", i), &sluicev1.LoadSpec{
			Script: "loadtest/api.js", Target: srv.URL, Vus: vus, Duration: durationpb.New(duration),
		})
		worker += time.Since(start)
		if res.GetOutcome() != sluicev1.Outcome_OUTCOME_PASSED {
			b.Fatalf("worker run: %s %s", res.GetOutcome(), res.GetMessage())
		}
	}
	n := float64(b.N)
	b.ReportMetric(direct.Seconds()/n, "direct_s/op")
	b.ReportMetric(worker.Seconds()/n, "worker_s/op")
	b.ReportMetric((worker-direct).Seconds()/n, "overhead_s/op")
	b.ReportMetric(100*(worker-direct).Seconds()/direct.Seconds(), "overhead_%")
}
