// Command sluice is the whole of Sluice in one binary: `sluice dev` runs a fleet in one
// process, `sluice coordinator` and `sluice worker` run its parts on many machines, and the
// client commands (run, runs, logs, events, approve, rollback, cancel, artifacts) drive it.
// Each engine also runs alone, without NATS: `sluice governance scan`, `sluice contract
// check`, `sluice testreport`, `sluice load run`, `sluice e2e run`, `sluice backupverify`,
// `sluice router`. `sluice --help` and each command's --help teach the rest.
package main
