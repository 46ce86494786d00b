package main

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestBenchMeasuresAChildCoordinator runs a small benchmark with the coordinator as a child
// process (this test binary acting as sluice) and checks the JSON a user scripts against:
// every key there, the coordinator's own memory measured.
func TestBenchMeasuresAChildCoordinator(t *testing.T) {
	t.Setenv(envAsCLI, "1")
	code, stdout, stderr := cli(t, "bench", "--json", "--runs", "30", "--inflight", "5", "--sequential", "3")
	if code != exitOK {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	var rep map[string]any
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatalf("stdout is not one JSON object: %v\n%s", err, stdout)
	}
	for _, key := range []string{"floor_publish_p50_us", "floor_roundtrip_p50_us", "dispatch_p50_us", "dispatch_p99_us",
		"stages_per_s", "chain_stages_per_s", "dag7_p50_us", "dag7_p99_us", "dag7_floor_roundtrip_p50_us", "overhead_x_floor", "exec_overhead_us", "coordinator_rss_mb",
		"protocol_stages_per_s", "protocol_chain_stages_per_s", "protocol_dag7_p50_us"} {
		if _, ok := rep[key].(float64); !ok {
			t.Errorf("no number %q in %s", key, stdout)
		}
	}
	// A Go process with a NATS connection and a few runs' state: megabytes, not bytes, and
	// not the benchmark's own process with its server and workers.
	if rss := rep["coordinator_rss_mb"].(float64); rss < 5 || rss > 500 {
		t.Errorf("coordinator_rss_mb = %v, want the child's resident memory", rss)
	}
	for _, phase := range []string{"floor:", "warm-up:", "dispatch:", "chains:", "dag7:", "exec:"} {
		if !strings.Contains(stderr, phase) {
			t.Errorf("no progress line for %q on stderr:\n%s", phase, stderr)
		}
	}
}

// TestBenchTableNamesTargets checks the table a user reads: the machine, the floor, each
// target with its verdict.
func TestBenchTableNamesTargets(t *testing.T) {
	code, stdout, stderr := cli(t, "bench", "--in-process", "--runs", "14", "--inflight", "2", "--sequential", "2")
	if code != exitOK {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	for _, want := range []string{"machine:", "floor: raw round trip", "floor: raw round trip between the dag7 runs", "protocol floor: 1-stage runs / 7-stage chains", "over the protocol floor: one 7-stage chain's time", "dispatch latency p99", "<= 10000 us", ">= 5000/s", "coordinator resident memory"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("table lacks %q:\n%s", want, stdout)
		}
	}
	if !strings.Contains(stdout, "not measured") {
		t.Errorf("an in-process coordinator's memory is reported as measured:\n%s", stdout)
	}
}
