package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluice-ci/sluice/coordinator/spec"
	"github.com/sluice-ci/sluice/internal/bench"
	"github.com/sluice-ci/sluice/internal/bus"
)

func newBenchCmd(a *app) *cobra.Command {
	var (
		asJSON     bool
		check      bool
		inProcess  bool
		workDir    string
		runs       int
		inflight   int
		sequential int
		finished   int
		bigRun     int
	)
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure dispatch latency and throughput beside the JetStream floor",
		Long: `Measure Sluice on one NATS server beside the floor it cannot beat, in one run:

  floor      a synchronous publish to a file-store stream, and a raw task -> result round
             trip (work queue, pull consumer, result stream, second consumer)
  protocol   the runs of dispatch, chains and dag7 below, with Sluice's messages (as many
             through the server per run) and none of its logic: what the wire protocol
             costs on this host, and so what Sluice's own code costs beyond it
  dispatch   --runs 1-stage runs, --inflight at once: stages/s, and the latency from the
             coordinator's decision to a worker holding the task
  chains     --runs/7 runs of a 7-stage chain, --inflight at once: stages/s
  dag7       --sequential 7-stage chains one at a time: submit to run.passed
  exec       --sequential 1-stage runs of a no-op and of a real 'true' step: what running a
             step costs
  big run    one run of --big-run independent stages, and 1-stage runs one at a time
             beside it: what a huge run costs the others

With --finished N the runs bucket holds N finished runs before the coordinator starts:
compare the dispatch numbers and the coordinator's start with and without.

The workers' handler passes at once, so the numbers are Sluice's (coordinator, bus,
worker protocol), not a step's. The coordinator runs as a child process (this binary's
'sluice coordinator'), so its memory is its own. Without --nats the benchmark starts an
embedded nats-server with a file store in a temporary directory, removed afterwards; with
--nats it uses that server under a prefix of its own and deletes what it made. Task trees
go to tmpfs (/dev/shm) unless --work-dir says otherwise.

Run it on a quiet machine: a number taken under other load misleads. The floor is measured
in the same run for that reason. It takes under a minute with the defaults on two cores.`,
		Example: `  sluice bench
  sluice bench --json > bench.json
  sluice bench --runs 2000 --inflight 50
  # A fleet that has kept a month of runs:
  sluice bench --finished 100000
  # Exit 1 when a target is missed:
  sluice bench --check`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			for _, f := range []struct {
				name   string
				v, min int
			}{{"runs", runs, 1}, {"inflight", inflight, 1}, {"sequential", sequential, 1}, {"finished", finished, 0}, {"big-run", bigRun, 0}} {
				if f.v < f.min {
					return usageErrorf(cmd, "--%s %d: must be %d or more", f.name, f.v, f.min)
				}
			}
			if bigRun > spec.MaxStages {
				return usageErrorf(cmd, "--big-run %d: a pipeline has at most %d stages", bigRun, spec.MaxStages)
			}
			if bigRun == 0 {
				bigRun = -1
			}
			// The child coordinator's output and the progress lines share stderr.
			stderr := &lockedWriter{w: a.stderr}
			log := a.log
			if !cmd.Flags().Changed("log-level") {
				// A line per task would cost the workers more than the no-op they run.
				log = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
			}
			o := bench.Options{
				NATS: a.natsURL, Creds: a.creds, Runs: runs, InFlight: inflight, Sequential: sequential, Finished: finished, BigRun: bigRun,
				WorkDir: workDir, Progress: stderr, Logger: log,
			}
			if !inProcess {
				self, err := os.Executable()
				if err != nil {
					return fmt.Errorf("find this binary to start the coordinator from: %w (pass --in-process)", err)
				}
				o.Coordinator = childCoordinator(self, stderr)
			}
			rep, err := bench.Run(cmd.Context(), o)
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(a.stdout)
				enc.SetIndent("", "  ")
				if err := enc.Encode(rep); err != nil {
					return err
				}
			} else {
				printBench(a.stdout, rep)
			}
			if missed := missedTargets(rep); check && len(missed) > 0 {
				return fmt.Errorf("targets missed: %s", strings.Join(missed, ", "))
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVar(&asJSON, "json", false, "print one JSON object (the keys are the README's performance table)")
	f.BoolVar(&check, "check", false, "exit 1 when a number misses its target")
	f.BoolVar(&inProcess, "in-process", false, "run the coordinator in this process (no RSS figure)")
	f.StringVar(&workDir, "work-dir", "", "where the workers make task trees (default: a directory on /dev/shm, else the temp dir)")
	f.IntVar(&runs, "runs", bench.DefaultRuns, "1-stage runs in the dispatch phase (and runs/7 chains)")
	f.IntVar(&inflight, "inflight", bench.DefaultInFlight, "runs kept in flight in the dispatch and chain phases")
	f.IntVar(&sequential, "sequential", bench.DefaultSequential, "runs, one at a time, in the dag7 and exec phases")
	f.IntVar(&finished, "finished", 0, "finished runs stored before the coordinator starts")
	f.IntVar(&bigRun, "big-run", bench.DefaultBigRun, "stages of the big run (0: no big-run phase)")
	return cmd
}

// printBench prints the report as a table: each number, its target, and whether it is met.
func printBench(w io.Writer, r *bench.Report) {
	fmt.Fprintf(w, "machine: %s\nserver:  %s\nwork dir: %s (steps isolated: %v)\n\n", r.Machine, r.Server, r.WorkDir, r.StepsIsolated)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "what\tvalue\ttarget\t")
	fmt.Fprintf(tw, "floor: sync publish p50 / p99\t%.0f / %.0f us\t\t\n", r.FloorPublishP50Us, r.FloorPublishP99Us)
	fmt.Fprintf(tw, "floor: raw round trip p50 / p99\t%.0f / %.0f us\t\t\n", r.FloorRoundtripP50Us, r.FloorRoundtripP99Us)
	fmt.Fprintf(tw, "floor: raw round trip between the dag7 runs p50\t%.0f us\t\t\n", r.DAG7FloorRoundtripP50Us)
	fmt.Fprintf(tw, "protocol floor: 1-stage runs / 7-stage chains, stages/s\t%.0f / %.0f\t\t\n", r.ProtocolStagesPerS, r.ProtocolChainStagesPerS)
	fmt.Fprintf(tw, "protocol floor: one 7-stage chain at a time p50\t%.0f us\t\t\n", r.ProtocolDAG7P50Us)
	for _, t := range bench.Targets {
		v, _ := r.Value(t.Key)
		mark := "ok"
		switch {
		case t.Key == "coordinator_rss_mb" && v == 0:
			mark = "not measured"
		case !t.Met(v):
			mark = "MISSED"
		}
		cmp := "<="
		if t.AtLeast {
			cmp = ">="
		}
		fmt.Fprintf(tw, "%s\t%s\t%s %s\t%s\n", t.What, formatNumber(v, t.Unit), cmp, formatNumber(t.Bound, t.Unit), mark)
	}
	if r.ProtocolStagesPerS > 0 && r.ProtocolChainStagesPerS > 0 && r.ProtocolDAG7P50Us > 0 {
		// What Sluice's own code costs: its numbers over the protocol floor's, same runs.
		fmt.Fprintf(tw, "over the protocol floor: 1-stage runs / chains, stages/s\t%.2fx / %.2fx\t\t\n",
			r.StagesPerS/r.ProtocolStagesPerS, r.ChainStagesPerS/r.ProtocolChainStagesPerS)
		fmt.Fprintf(tw, "over the protocol floor: one 7-stage chain's time\t%.1fx\t\t\n", r.DAG7P50Us/r.ProtocolDAG7P50Us)
	}
	fmt.Fprintf(tw, "7-stage DAG p99\t%.0f us\t\t\n", r.DAG7P99Us)
	fmt.Fprintf(tw, "chain dispatch p50 / p99\t%.0f / %.0f us\t\t\n", r.ChainDispatchP50Us, r.ChainDispatchP99Us)
	fmt.Fprintf(tw, "coordinator start, %d finished runs stored\t%.0f ms\t\t\n", r.FinishedRuns, r.CoordinatorReadyMs)
	if r.BigRunStages > 0 {
		fmt.Fprintf(tw, "%d-stage run\t%.1f s\t\t\n", r.BigRunStages, r.BigRunS)
		fmt.Fprintf(tw, "1-stage run beside it p50 / p99 (alone p50)\t%.0f / %.0f us (%.0f us)\t\t\n", r.BesideBigRunP50Us, r.BesideBigRunP99Us, r.NoopRunP50Us)
	}
	_ = tw.Flush()
	fmt.Fprintf(w, "\n%d runs in %.0f s\n", r.Runs, r.DurationS)
}

func formatNumber(v float64, unit string) string {
	switch unit {
	case "x":
		return strconv.FormatFloat(v, 'f', 1, 64) + "x"
	case "MB":
		return strconv.FormatFloat(v, 'f', 0, 64) + " MB"
	case "/s":
		return strconv.FormatFloat(v, 'f', 0, 64) + "/s"
	}
	return strconv.FormatFloat(v, 'f', 0, 64) + " " + unit
}

func missedTargets(r *bench.Report) []string {
	var missed []string
	for _, t := range bench.Targets {
		if v, err := r.Value(t.Key); err == nil && !(t.Key == "coordinator_rss_mb" && v == 0) && !t.Met(v) {
			missed = append(missed, t.Key)
		}
	}
	return missed
}

// childCoordinator starts `sluice coordinator` from binary self as a child process.
func childCoordinator(self string, stderr io.Writer) bench.Starter {
	return func(_ context.Context, url, creds string, names bus.Names, _ *slog.Logger) (bench.Coordinator, error) {
		args := []string{"coordinator", "--nats", url, "--prefix", names.Prefix, "--http", "", "--log-level", "error"}
		if creds != "" {
			args = append(args, "--creds", creds)
		}
		cmd := exec.Command(self, args...)
		cmd.Stdout, cmd.Stderr = stderr, stderr
		// Dies with the benchmark, whatever ends it.
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			return nil, fmt.Errorf("start %s coordinator: %w", self, err)
		}
		c := &child{cmd: cmd, done: make(chan struct{})}
		go func() {
			defer close(c.done)
			c.err = cmd.Wait()
		}()
		return c, nil
	}
}

type child struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error // set before done closes
}

func (c *child) Done() <-chan struct{} { return c.done }

func (c *child) RSS() (int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", c.cmd.Process.Pid))
	if err != nil {
		return 0, fmt.Errorf("coordinator memory: %w", err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("coordinator memory: VmRSS %q: %w", rest, err)
			}
			return kb << 10, nil
		}
	}
	return 0, errors.New("coordinator memory: no VmRSS in /proc/PID/status")
}

func (c *child) Stop() error {
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
		return c.err
	case <-time.After(30 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.done
		return fmt.Errorf("coordinator did not stop within 30s of SIGTERM; killed: %w", c.err)
	}
}

// lockedWriter serialises writes from several goroutines.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
