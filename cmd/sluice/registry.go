package main

import "github.com/sluice-ci/sluice/workers"

// kindRegistry is every kind's handler in this binary: the generic `run:` handler, replaced
// by a kind's engine where one exists. `sluice dev` and `sluice worker` both use it.
func kindRegistry() *workers.Registry {
	r := workers.DefaultRegistry()
	return r
}
