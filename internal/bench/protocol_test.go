package bench

import (
	"math"
	"testing"
)

// TestProtocolFloorSendsSluicesMessages: the protocol floor stands for Sluice's wire
// protocol only while it moves as many messages through the server per run as Sluice does,
// in and out. A change to what Sluice sends per run fails this test until the floor sends
// the same.
func TestProtocolFloorSendsSluicesMessages(t *testing.T) {
	s, err := openServer(t.Context(), Options{}.withDefaults(), &Report{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.close)
	work, cleanup, err := workDir("")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cleanup)

	const runs = 300
	type perRun struct{ in, out float64 }
	measure := func(t *testing.T, sustain func(stages, runs int) error, stages int) perRun {
		t.Helper()
		if err := sustain(1, 20); err != nil {
			t.Fatal(err)
		}
		before, err := s.embedded.Server().Varz(nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := sustain(stages, runs); err != nil {
			t.Fatal(err)
		}
		after, err := s.embedded.Server().Varz(nil)
		if err != nil {
			t.Fatal(err)
		}
		return perRun{float64(after.InMsgs-before.InMsgs) / runs, float64(after.OutMsgs-before.OutMsgs) / runs}
	}

	p, err := startProtocol(t.Context(), s)
	if err != nil {
		t.Fatal(err)
	}
	floor := map[int]perRun{}
	for _, stages := range []int{1, 7} {
		floor[stages] = measure(t, func(stages, runs int) error {
			_, err := p.sustain(t.Context(), stages, runs, 20)
			return err
		}, stages)
	}
	p.stop()

	f, err := startFleet(t.Context(), s, Options{}.withDefaults(), work)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.stop)
	for _, stages := range []int{1, 7} {
		sluice := measure(t, func(stages, runs int) error {
			_, err := f.sustain(t.Context(), stages, runs, 20)
			return err
		}, stages)
		fl := floor[stages]
		t.Logf("%d-stage runs, messages per run into / out of the server: Sluice %.2f / %.2f, the protocol floor %.2f / %.2f",
			stages, sluice.in, sluice.out, fl.in, fl.out)
		// Pulls and the coordinator's seals come in batches: half a message per run.
		if math.Abs(sluice.in-fl.in) > 0.5 || math.Abs(sluice.out-fl.out) > 0.5 {
			t.Errorf("%d-stage runs: Sluice moves %.2f / %.2f messages per run in / out, the protocol floor %.2f / %.2f",
				stages, sluice.in, sluice.out, fl.in, fl.out)
		}
	}
}
