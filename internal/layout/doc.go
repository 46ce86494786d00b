// Package layout holds no code: its test enforces the package rules of DESIGN.md
// ("Layout"). The engines (governance, contract, testreport, backupverify, loadtest, e2e,
// deploy) are libraries that know nothing of NATS, the bus, the workers, the coordinator or
// the generated proto; the decision package (coordinator/decide) knows the proto's run
// state and nothing else of Sluice, and nothing of NATS.
package layout
