package testreport

import (
	"cmp"
	"slices"
	"strings"
	"time"
)

// DefaultUnitDuration is the estimate of a unit when no unit of the stage has a timing yet.
const DefaultUnitDuration = time.Second

// Unit is one piece of a test suite that runs on exactly one shard (a Go package, a test
// file), with its recorded duration when it has one.
type Unit struct {
	Name     string
	Duration time.Duration
	Known    bool // Duration was recorded by an earlier run
}

// Split assigns units to n shards, longest processing time first: the units, longest
// first, each go to the shard with the least estimated work so far. A unit without a
// timing is estimated at the mean of the known ones (DefaultUnitDuration when none is
// known). Ties are broken by unit name and then by the lower shard index, so every caller
// with the same input gets the same split. Each shard's units come back sorted by name;
// duplicate names count once.
func Split(units []Unit, n int) [][]string {
	n = max(n, 1)
	seen := make(map[string]bool, len(units))
	var known []Unit
	var sum time.Duration
	var items []Unit
	for _, u := range units {
		if seen[u.Name] {
			continue
		}
		seen[u.Name] = true
		items = append(items, u)
		if u.Known {
			known = append(known, u)
			sum += u.Duration
		}
	}
	estimate := DefaultUnitDuration
	if len(known) > 0 {
		estimate = sum / time.Duration(len(known))
	}
	for i := range items {
		if !items[i].Known {
			items[i].Duration = estimate
		}
	}
	slices.SortFunc(items, func(a, b Unit) int {
		if c := cmp.Compare(b.Duration, a.Duration); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	shards := make([][]string, n)
	load := make([]time.Duration, n)
	for _, u := range items {
		least := 0
		for i := 1; i < n; i++ {
			if load[i] < load[least] {
				least = i
			}
		}
		shards[least] = append(shards[least], u.Name)
		load[least] += u.Duration
	}
	for _, s := range shards {
		slices.Sort(s)
	}
	return shards
}

// Units are the named units with the durations known records, in the order of names; a
// name without a record is a new unit, estimated by Split.
func Units(names []string, known map[string]time.Duration) []Unit {
	us := make([]Unit, len(names))
	for i, n := range names {
		d, ok := known[n]
		us[i] = Unit{Name: n, Duration: d, Known: ok}
	}
	return us
}
