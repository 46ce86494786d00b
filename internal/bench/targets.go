package bench

import "fmt"

// Target is a bound one of the report's numbers should keep.
type Target struct {
	Key   string // the JSON key
	What  string
	Unit  string
	Bound float64
	// AtLeast: the number must be at least Bound; else at most.
	AtLeast bool
}

// Targets are Sluice's performance targets on a quiet 2-core machine.
var Targets = []Target{
	{"stages_per_s", "1-stage runs, stages per second", "/s", 5000, true},
	{"chain_stages_per_s", "7-stage chains, stages per second", "/s", 5000, true},
	{"dispatch_p50_us", "dispatch latency p50", "us", 1000, false},
	{"dispatch_p99_us", "dispatch latency p99", "us", 10000, false},
	{"dag7_p50_us", "7-stage DAG, submit to passed, p50", "us", 5000, false},
	{"overhead_x_floor", "7-stage DAG, time per stage over the floor round trip beside it", "x", 5, false},
	{"exec_overhead_us", "a `true` step over a no-op", "us", 2000, false},
	{"coordinator_rss_mb", "coordinator resident memory after the runs", "MB", 200, false},
}

// Value is the report's number under key.
func (r *Report) Value(key string) (float64, error) {
	v, ok := map[string]float64{
		"floor_publish_p50_us":        r.FloorPublishP50Us,
		"floor_roundtrip_p50_us":      r.FloorRoundtripP50Us,
		"dag7_floor_roundtrip_p50_us": r.DAG7FloorRoundtripP50Us,
		"protocol_stages_per_s":       r.ProtocolStagesPerS,
		"protocol_chain_stages_per_s": r.ProtocolChainStagesPerS,
		"protocol_dag7_p50_us":        r.ProtocolDAG7P50Us,
		"stages_per_s":                r.StagesPerS,
		"chain_stages_per_s":          r.ChainStagesPerS,
		"dispatch_p50_us":             r.DispatchP50Us,
		"dispatch_p99_us":             r.DispatchP99Us,
		"dag7_p50_us":                 r.DAG7P50Us,
		"dag7_p99_us":                 r.DAG7P99Us,
		"overhead_x_floor":            r.OverheadXFloor,
		"exec_overhead_us":            r.ExecOverheadUs,
		"coordinator_rss_mb":          r.CoordinatorRSSMB,
	}[key]
	if !ok {
		return 0, fmt.Errorf("no number %q in the report", key)
	}
	return v, nil
}

// Met reports whether v keeps the target.
func (t Target) Met(v float64) bool {
	if t.AtLeast {
		return v >= t.Bound
	}
	return v <= t.Bound
}
