// Package sluicev1 is Sluice's wire contract: the messages of tasks, results, events, run
// state, pipeline specs and the run API, generated from the *.proto files beside it
// (`make proto`; `make lint` fails on stale or breaking changes, since other systems consume
// the events), and a few hand-written helpers on them (kind.go: kind names and slugs, the
// name rules subjects rely on).
package sluicev1
