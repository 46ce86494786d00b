// Package decide is the coordinator's decision logic, apart from everything that talks to
// NATS: Policy.Decide is a pure function from a run's state, one Input and the time to a
// Decision (the next state, with its events in the outbox, and the effects to carry out:
// tasks, cancel signals, a purge, locks, evidence). Policy.Process decides a batch of
// inputs for one run and hands the merged decision to a Planner, deciding again when
// another writer stored the run first. The coordinator's planner stores states with KV
// compare-and-swap and publishes on JetStream; Harness is a Planner in memory that records
// what it is given, for tests.
//
// The rollout of a traffic-shift stage (rollout.go), the bounds that keep a state within
// what the server stores (bounds.go), and the lock policy of concurrency groups (locks.go)
// are decisions too and live here.
//
// The package depends on the generated protobuf types, and nothing else of Sluice: the run
// state is the protobuf record the planner stores, as Nomad's scheduler works on the structs
// its servers replicate. It never imports nats-io, internal/bus or the workers (a test in
// internal/layout enforces it).
package decide
