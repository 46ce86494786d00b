package bus

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strings"
)

// A result proves it comes from a holder of its task: the worker signs the exact bytes of
// the Result it publishes with the task's lease (Task.lease, a secret the coordinator derives
// per task and nobody but the coordinators and the workers of the task's kind can read), and
// the coordinator checks the signature before it folds the result. The header is
// "v1=<base64 HMAC-SHA256(lease, data)>".

const proofVersion = "v1="

// Prove returns the Sluice-Proof header value of data under lease.
func Prove(lease, data []byte) string {
	m := hmac.New(sha256.New, lease)
	m.Write(data)
	return proofVersion + base64.RawStdEncoding.EncodeToString(m.Sum(nil))
}

// CheckProof reports nil when proof is Prove(lease, data), else why not.
func CheckProof(lease, data []byte, proof string) error {
	if proof == "" {
		return fmt.Errorf("no %s header", HeaderProof)
	}
	sig, ok := strings.CutPrefix(proof, proofVersion)
	if !ok {
		return fmt.Errorf("%s header of an unknown version", HeaderProof)
	}
	got, err := base64.RawStdEncoding.DecodeString(sig)
	if err != nil {
		return fmt.Errorf("%s header is not base64", HeaderProof)
	}
	m := hmac.New(sha256.New, lease)
	m.Write(data)
	if !hmac.Equal(got, m.Sum(nil)) {
		return fmt.Errorf("%s does not match the task's lease", HeaderProof)
	}
	return nil
}

// LeaseID names the task a lease belongs to: run, stage, attempt, shard and rollout action,
// each explicit, so no two tasks share one.
func LeaseID(run, stage string, attempt, shard, rolloutSeq int32) string {
	return fmt.Sprintf("%s/%s/%d/%d/%d", run, stage, attempt, shard, rolloutSeq)
}
