package bench

import (
	"time"

	"testing"

	sluicev1 "github.com/sluice-ci/sluice/proto/sluice/v1"
)

// The Go benchmarks run the phases of `sluice bench` with b.N runs, the coordinator in
// process: `make bench-go` reports them beside every package's other benchmarks.

func BenchmarkFloorSyncPublish(b *testing.B) {
	s := benchServer(b)
	lat, err := FloorPublish(b.Context(), s.js, s.names.Prefix, b.N)
	if err != nil {
		b.Fatal(err)
	}
	report(b, "publish", lat)
}

func BenchmarkFloorRoundTrip(b *testing.B) {
	s := benchServer(b)
	lat, err := FloorRoundTrip(b.Context(), s.js, s.names.Prefix, b.N)
	if err != nil {
		b.Fatal(err)
	}
	report(b, "roundtrip", lat)
}

// BenchmarkDispatch: 1-stage no-op runs, 100 in flight.
func BenchmarkDispatch(b *testing.B) { benchSustain(b, 1) }

// BenchmarkThroughput: 7-stage no-op chains, 100 in flight.
func BenchmarkThroughput(b *testing.B) { benchSustain(b, 7) }

// BenchmarkSevenStageDAG: one 7-stage no-op chain at a time, submit to run.passed.
func BenchmarkSevenStageDAG(b *testing.B) {
	f := benchFleet(b)
	b.ResetTimer()
	lat, err := f.sequential(b.Context(), noopSpec(7, sluicev1.StageKind_STAGE_KIND_STATIC), b.N)
	if err != nil {
		b.Fatal(err)
	}
	report(b, "run", lat)
}

// BenchmarkProtocolDispatch: the protocol floor's 1-stage runs, 100 in flight: Sluice's
// messages without its logic.
func BenchmarkProtocolDispatch(b *testing.B) { benchProtocol(b, 1) }

// BenchmarkProtocolThroughput: the protocol floor's 7-stage chains, 100 in flight.
func BenchmarkProtocolThroughput(b *testing.B) { benchProtocol(b, 7) }

// BenchmarkProtocolSevenStageDAG: one protocol floor 7-stage chain at a time.
func BenchmarkProtocolSevenStageDAG(b *testing.B) {
	p := benchProtocolFloor(b)
	b.ResetTimer()
	lat, err := p.sequential(b.Context(), 7, b.N)
	if err != nil {
		b.Fatal(err)
	}
	report(b, "run", lat)
}

func benchProtocol(b *testing.B, stages int) {
	p := benchProtocolFloor(b)
	b.ResetTimer()
	perS, err := p.sustain(b.Context(), stages, b.N, DefaultInFlight)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(perS, "stages/s")
}

func benchProtocolFloor(b *testing.B) *protocol {
	s := benchServer(b)
	p, err := startProtocol(b.Context(), s)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(p.stop)
	if _, err := p.sustain(b.Context(), 1, DefaultInFlight, DefaultInFlight); err != nil {
		b.Fatal(err)
	}
	return p
}

func benchSustain(b *testing.B, stages int) {
	f := benchFleet(b)
	if _, err := f.sustain(b.Context(), 1, DefaultInFlight, DefaultInFlight); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	s, err := f.sustain(b.Context(), stages, b.N, DefaultInFlight)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(s.stagesPerS, "stages/s")
	report(b, "dispatch", s.dispatch)
}

func benchServer(b *testing.B) *server {
	s, err := openServer(b.Context(), Options{}.withDefaults(), &Report{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(s.close)
	return s
}

func benchFleet(b *testing.B) *fleet {
	s := benchServer(b)
	work, cleanup, err := workDir("")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(cleanup)
	f, err := startFleet(b.Context(), s, Options{}.withDefaults(), work)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(f.stop)
	return f
}

func report(b *testing.B, name string, lat Latencies) {
	b.ReportMetric(lat.P(0.5), name+"-p50-us")
	b.ReportMetric(lat.P(0.99), name+"-p99-us")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkBigRun: b.N runs of DefaultBigRun independent no-op stages, one at a time, with
// 1-stage runs one at a time beside each.
func BenchmarkBigRun(b *testing.B) {
	f := benchFleet(b)
	b.ResetTimer()
	var took time.Duration
	var beside Latencies
	for range b.N {
		t, l, err := f.bigRun(b.Context(), DefaultBigRun)
		if err != nil {
			b.Fatal(err)
		}
		took += t
		beside = append(beside, l...)
	}
	b.ReportMetric(took.Seconds()/float64(b.N), "big-run-s")
	report(b, "beside", beside)
}
