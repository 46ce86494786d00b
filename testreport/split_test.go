package testreport

import (
	"reflect"
	"testing"
	"time"
)

func ms(n int) time.Duration { return time.Duration(n) * time.Millisecond }

func known(name string, d time.Duration) Unit { return Unit{Name: name, Duration: d, Known: true} }

func TestSplit(t *testing.T) {
	for _, tc := range []struct {
		name  string
		units []Unit
		n     int
		want  [][]string
	}{
		{
			name:  "longest first onto the least loaded shard",
			units: []Unit{known("a", ms(1200)), known("b", ms(1000)), known("c", ms(800)), known("d", ms(600)), known("e", ms(400)), known("f", ms(200))},
			n:     2,
			// a=1200 | b=1000; c->b 1800; d->a 1800; e->a (tie: lower shard) 2200; f->b 2000.
			want: [][]string{{"a", "d", "e"}, {"b", "c", "f"}},
		},
		{
			name:  "no timings: even by name",
			units: []Unit{{Name: "f"}, {Name: "e"}, {Name: "d"}, {Name: "c"}, {Name: "b"}, {Name: "a"}},
			n:     2,
			want:  [][]string{{"a", "c", "e"}, {"b", "d", "f"}},
		},
		{
			name: "unknown units get the mean of the known",
			// mean 500: new=500 goes after big=900 and before small=100.
			units: []Unit{known("big", ms(900)), {Name: "new"}, known("small", ms(100))},
			n:     2,
			want:  [][]string{{"big"}, {"new", "small"}},
		},
		{
			name:  "equal durations tie by name",
			units: []Unit{known("z", ms(100)), known("y", ms(100)), known("x", ms(100))},
			n:     3,
			want:  [][]string{{"x"}, {"y"}, {"z"}},
		},
		{
			name:  "more shards than units leaves shards empty",
			units: []Unit{{Name: "only"}},
			n:     3,
			want:  [][]string{{"only"}, nil, nil},
		},
		{
			name:  "duplicates count once",
			units: []Unit{{Name: "a"}, {Name: "a"}, {Name: "b"}},
			n:     2,
			want:  [][]string{{"a"}, {"b"}},
		},
		{
			name:  "zero shards is one",
			units: []Unit{{Name: "b"}, {Name: "a"}},
			n:     0,
			want:  [][]string{{"a", "b"}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Split(tc.units, tc.n)
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("Split = %q, want %q", got, tc.want)
			}
			// The same units in another order give the same split.
			rev := make([]Unit, len(tc.units))
			for i, u := range tc.units {
				rev[len(rev)-1-i] = u
			}
			if again := Split(rev, tc.n); !reflect.DeepEqual(again, got) {
				t.Fatalf("reversed input: %q, want %q", again, got)
			}
		})
	}
}

// LPT keeps the busiest shard within 4/3 of the optimum; on a spread of durations like a
// real suite's it is far closer.
func TestSplitBalanced(t *testing.T) {
	var units []Unit
	var total time.Duration
	for i := range 40 {
		d := ms(50 + (i*37)%900)
		total += d
		units = append(units, known(string(rune('A'+i%26))+string(rune('a'+i/26)), d))
	}
	durations := map[string]time.Duration{}
	for _, u := range units {
		durations[u.Name] = u.Duration
	}
	for _, n := range []int{2, 3, 4, 7} {
		shards := Split(units, n)
		var most, least time.Duration = 0, total
		count := 0
		for _, s := range shards {
			var load time.Duration
			for _, u := range s {
				load += durations[u]
				count++
			}
			most, least = max(most, load), min(least, load)
		}
		if count != len(units) {
			t.Fatalf("%d shards hold %d units, want %d", n, count, len(units))
		}
		if float64(most-least) > 0.05*float64(most) {
			t.Errorf("%d shards: loads from %s to %s, want within 5%%", n, least, most)
		}
	}
}

// Units carries the recorded durations, in the order of the names; a name without one is new.
func TestUnits(t *testing.T) {
	got := Units([]string{"b", "a", "new"}, map[string]time.Duration{"a": ms(300), "b": ms(100), "gone": ms(5)})
	want := []Unit{known("b", ms(100)), known("a", ms(300)), {Name: "new"}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Units = %+v, want %+v", got, want)
	}
}
