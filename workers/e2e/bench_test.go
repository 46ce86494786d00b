package e2e

import (
	"fmt"
	"log/slog"
	"testing"

	engine "github.com/sluice-ci/sluice/e2e"
	sluicev1 "github.com/sluice-ci/sluice/proto/sluice/v1"
)

// BenchmarkSuite24 is the wall time of a 24-journey suite split into one shard per worker,
// each worker with its own browser as a separate worker process has. Browsers start before
// the timer.
func BenchmarkSuite24(b *testing.B) { suite(b, 24, 1, 2, 4) }

// BenchmarkSuite12 is the 12-journey suite on one and on three workers.
func BenchmarkSuite12(b *testing.B) { suite(b, 12, 1, 3) }

func suite(b *testing.B, journeys int, workerCounts ...int) {
	if _, err := engine.FindChromium(""); err != nil {
		b.Skip(err)
	}
	dir := b.TempDir()
	writeJourneys(b, dir, journeys)
	site := shopSite(b)
	for _, workers := range workerCounts {
		b.Run(fmt.Sprintf("workers=%d", workers), func(b *testing.B) {
			f := newFleetOf(b, dir)
			for w := range workers {
				h := New(engine.Config{Logger: slog.New(slog.DiscardHandler)})
				b.Cleanup(func() { _ = h.Close() })
				if _, err := h.engine(); err != nil {
					b.Fatal(err)
				}
				if err := h.eng.Start(b.Context()); err != nil {
					b.Fatal(err)
				}
				f.startWorkerWith(b, fmt.Sprintf("w%d", w), h, 0)
			}
			run := 0
			for b.Loop() {
				run++
				id := fmt.Sprintf("suite%d", run)
				for s := range int32(workers) {
					f.publish(b, task(id, s, int32(workers), &sluicev1.StageSpec{E2E: &sluicev1.E2ESpec{BaseUrl: site.URL, Journeys: []string{"journeys/*.yaml"}}}))
				}
				for _, r := range f.finals(b, id, workers) {
					if r.GetOutcome() != sluicev1.Outcome_OUTCOME_PASSED {
						b.Fatalf("shard %d: %s", r.GetShardIndex(), r.GetMessage())
					}
				}
			}
		})
	}
}
