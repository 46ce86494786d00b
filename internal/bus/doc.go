// Package bus is Sluice's side of NATS: connecting (credentials, TLS, fail-fast errors that
// say what to do), the embedded server `sluice dev` runs, every subject, stream, consumer,
// bucket and object store name under the installation's prefix (Names), provisioning them
// (Provision), the identities that travel in subjects (Identity), and the proofs that bind a
// result to the task lease it answers (Prove, CheckProof).
//
// Everything that talks to NATS builds on it; the engines and the decisions never import it
// (internal/layout's test enforces that).
package bus
