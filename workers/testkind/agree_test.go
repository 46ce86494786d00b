package testkind

import (
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/sluice-ci/sluice/internal/bus"
	"github.com/sluice-ci/sluice/internal/bus/bustest"
	sluicev1 "github.com/sluice-ci/sluice/proto/sluice/v1"
	"github.com/sluice-ci/sluice/testreport"
)

// Shards of one attempt that start together, while timings change under them, all get the
// one split the first stored: no unit runs twice or never. Another attempt splits afresh.
func TestAgreeOneSplitPerAttempt(t *testing.T) {
	env := bustest.Start(t, bus.Config{})
	kv, err := env.JS.KeyValue(t.Context(), env.Config.Names.TimingsBucket())
	if err != nil {
		t.Fatal(err)
	}
	var units []string
	for i := range 30 {
		units = append(units, fmt.Sprintf("pkg/u%02d", i))
	}
	const shards = 8
	splits := make([][][]string, shards)
	var wg sync.WaitGroup
	wg.Go(func() {
		// Timings change while the shards start.
		for i, u := range units {
			if _, err := kv.Put(t.Context(), TimingKey("p", "test", u), []byte(strconv.Itoa(100*(i+1)))); err != nil {
				t.Error(err)
			}
		}
	})
	for i := range shards {
		wg.Go(func() {
			task := &sluicev1.Task{RunId: "run1", Pipeline: "p", Stage: "test", Attempt: 1, ShardIndex: int32(i), ShardCount: shards}
			s, err := AgreeSplit(t.Context(), kv, task, units)
			if err != nil {
				t.Error(err)
			}
			splits[i] = s
		})
	}
	wg.Wait()
	seen := map[string]int{}
	for i, s := range splits {
		if !reflect.DeepEqual(s, splits[0]) {
			t.Fatalf("shard %d got %q, shard 0 %q", i, s, splits[0])
		}
	}
	for _, shard := range splits[0] {
		for _, u := range shard {
			seen[u]++
		}
	}
	for _, u := range units {
		if seen[u] != 1 {
			t.Errorf("unit %s in %d shards", u, seen[u])
		}
	}

	// Attempt 2 splits afresh, by the timings now recorded.
	task := &sluicev1.Task{RunId: "run1", Pipeline: "p", Stage: "test", Attempt: 2, ShardCount: shards}
	s, err := AgreeSplit(t.Context(), kv, task, units)
	if err != nil {
		t.Fatal(err)
	}
	var want []testreport.Unit
	for i, u := range units {
		want = append(want, testreport.Unit{Name: u, Duration: time.Duration(100*(i+1)) * time.Millisecond, Known: true})
	}
	if !reflect.DeepEqual(s, testreport.Split(want, shards)) {
		t.Fatalf("attempt 2 split %q, want the timed split %q", s, testreport.Split(want, shards))
	}

	// A stored split for another shard count is an error, not a guess.
	task.ShardCount = 3
	if _, err := AgreeSplit(t.Context(), kv, task, units); !errors.Is(err, ErrBadSplit) {
		t.Fatalf("a 3-shard task with an 8-shard split stored: %v, want ErrBadSplit", err)
	}
}
