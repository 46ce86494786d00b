// Package evidence writes and checks the signed record a gate leaves when it promotes or
// rolls back a rollout: an in-toto Statement (https://github.com/in-toto/attestation) in a
// DSSE envelope (https://github.com/secure-systems-lab/dsse), signed with the fleet's
// ed25519 evidence key. The statement's subject is the source that was gated; its predicate
// names the run, the commit, who submitted and approved it, every stage's outcome and every
// analysis verdict with its numbers.
package evidence

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// Media and predicate types of the envelope and the statement.
const (
	PayloadType   = "application/vnd.in-toto+json"
	StatementType = "https://in-toto.io/Statement/v1"
	PredicateType = "https://sluice.dev/gate-evidence/v1"
)

// Statement is an in-toto Statement v1 with a gate predicate.
type Statement struct {
	Type          string    `json:"_type"`
	Subject       []Subject `json:"subject"`
	PredicateType string    `json:"predicateType"`
	Predicate     Gate      `json:"predicate"`
}

// Subject is what the statement is about: the source bundle, by digest and commit.
type Subject struct {
	Name   string            `json:"name"`
	Digest map[string]string `json:"digest"`
}

// Gate is what the gate decided and everything it decided on.
type Gate struct {
	Run          string    `json:"run"`
	Pipeline     string    `json:"pipeline"`
	Ref          string    `json:"ref"`
	RefProtected bool      `json:"refProtected"`
	Commit       string    `json:"commit,omitempty"`
	SourceDigest string    `json:"sourceDigest,omitempty"`
	SubmittedBy  string    `json:"submittedBy"`
	Stage        string    `json:"stage"`
	Decision     string    `json:"decision"` // promoted or rolled_back
	Reason       string    `json:"reason,omitempty"`
	Weight       int32     `json:"canaryWeight"`
	Stages       []Stage   `json:"stages"`
	Verdicts     []Verdict `json:"verdicts"`
	DecidedAt    time.Time `json:"decidedAt"`
	Coordinator  string    `json:"coordinator"`
}

// Stage is one stage's outcome when the gate decided.
type Stage struct {
	Name       string     `json:"name"`
	Status     string     `json:"status"`
	Attempt    int32      `json:"attempt"`
	ApprovedBy string     `json:"approvedBy,omitempty"`
	Message    string     `json:"message,omitempty"`
	StartedAt  *time.Time `json:"startedAt,omitempty"`
	FinishedAt *time.Time `json:"finishedAt,omitempty"`
}

// Verdict is one analysis of the canary.
type Verdict struct {
	Step      int32    `json:"step"`
	Weight    int32    `json:"weight"`
	Outcome   string   `json:"outcome"`
	Message   string   `json:"message,omitempty"`
	Intervals int32    `json:"intervals"`
	At        string   `json:"at"`
	Metrics   []Metric `json:"metrics"`
}

// Metric is one metric's numbers in a verdict.
type Metric struct {
	Name            string  `json:"name"`
	Rule            string  `json:"rule"`
	Outcome         string  `json:"outcome"`
	Canary          float64 `json:"canary"`
	Baseline        float64 `json:"baseline"`
	Limit           float64 `json:"limit"`
	CanarySamples   int64   `json:"canarySamples"`
	BaselineSamples int64   `json:"baselineSamples"`
	PValue          float64 `json:"pValue,omitempty"`
	EffectSize      float64 `json:"effectSize,omitempty"`
}

// Envelope is a DSSE envelope.
type Envelope struct {
	PayloadType string      `json:"payloadType"`
	Payload     string      `json:"payload"`
	Signatures  []Signature `json:"signatures"`
}

// Signature is one DSSE signature.
type Signature struct {
	KeyID string `json:"keyid"`
	Sig   string `json:"sig"`
}

// pae is DSSE's pre-authentication encoding, which is what is signed.
func pae(payloadType string, payload []byte) []byte {
	var b bytes.Buffer
	b.WriteString("DSSEv1 ")
	b.WriteString(strconv.Itoa(len(payloadType)))
	b.WriteByte(' ')
	b.WriteString(payloadType)
	b.WriteByte(' ')
	b.WriteString(strconv.Itoa(len(payload)))
	b.WriteByte(' ')
	b.Write(payload)
	return b.Bytes()
}

// KeyID names a public key: the hex SHA-256 of its bytes.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:])
}

// Sign wraps a gate's statement about subjects in an envelope signed with key.
func Sign(key ed25519.PrivateKey, subjects []Subject, g Gate) ([]byte, error) {
	st := Statement{Type: StatementType, Subject: subjects, PredicateType: PredicateType, Predicate: g}
	payload, err := json.Marshal(st)
	if err != nil {
		return nil, fmt.Errorf("encode the statement: %w", err)
	}
	sig := ed25519.Sign(key, pae(PayloadType, payload))
	env := Envelope{
		PayloadType: PayloadType,
		Payload:     base64.StdEncoding.EncodeToString(payload),
		Signatures:  []Signature{{KeyID: KeyID(key.Public().(ed25519.PublicKey)), Sig: base64.StdEncoding.EncodeToString(sig)}},
	}
	data, err := json.MarshalIndent(env, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode the envelope: %w", err)
	}
	return append(data, '\n'), nil
}

// Verify checks an envelope against pub and returns its statement. Any change to the
// envelope's payload or signature, a statement of another type, or another key fails with
// an error wrapping ErrInvalid.
func Verify(data []byte, pub ed25519.PublicKey) (*Statement, error) {
	var env Envelope
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&env); err != nil {
		return nil, fmt.Errorf("%w: not a DSSE envelope: %v", ErrInvalid, err)
	}
	if env.PayloadType != PayloadType {
		return nil, fmt.Errorf("%w: payload type %q, want %q", ErrInvalid, env.PayloadType, PayloadType)
	}
	payload, err := base64.StdEncoding.DecodeString(env.Payload)
	if err != nil {
		return nil, fmt.Errorf("%w: payload is not base64: %v", ErrInvalid, err)
	}
	want := KeyID(pub)
	verified := false
	for _, s := range env.Signatures {
		sig, err := base64.StdEncoding.DecodeString(s.Sig)
		if err != nil || s.KeyID != want {
			continue
		}
		if ed25519.Verify(pub, pae(env.PayloadType, payload), sig) {
			verified = true
			break
		}
	}
	if !verified {
		return nil, fmt.Errorf("%w: no signature by key %s verifies (the evidence was changed, or signed by another fleet)", ErrInvalid, want[:16])
	}
	var st Statement
	if err := json.Unmarshal(payload, &st); err != nil {
		return nil, fmt.Errorf("%w: signed payload is not a statement: %v", ErrInvalid, err)
	}
	if st.Type != StatementType || st.PredicateType != PredicateType {
		return nil, fmt.Errorf("%w: statement %q with predicate %q, want %q with %q", ErrInvalid, st.Type, st.PredicateType, StatementType, PredicateType)
	}
	return &st, nil
}
