package evidence_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/sluice-ci/sluice/internal/evidence"
)

func signed(t *testing.T) ([]byte, ed25519.PublicKey) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	data, err := evidence.Sign(priv, []evidence.Subject{{Name: "source", Digest: map[string]string{"sha256": "ab12", "gitCommit": "c0ffee"}}},
		evidence.Gate{Run: "r1", Pipeline: "web", Ref: "main", Decision: "promoted", Stage: "production", Weight: 100,
			Stages:    []evidence.Stage{{Name: "test", Status: "passed", Attempt: 1}},
			Verdicts:  []evidence.Verdict{{Step: 1, Weight: 10, Outcome: "healthy", Metrics: []evidence.Metric{{Name: "error_rate", Canary: 0.001, Baseline: 0.002, Limit: 0.003}}}},
			DecidedAt: time.Unix(1700000000, 0).UTC()})
	if err != nil {
		t.Fatal(err)
	}
	return data, pub
}

func TestVerifyAcceptsWhatSignWrote(t *testing.T) {
	data, pub := signed(t)
	st, err := evidence.Verify(data, pub)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if st.Predicate.Run != "r1" || st.Predicate.Decision != "promoted" || st.Subject[0].Digest["gitCommit"] != "c0ffee" {
		t.Fatalf("statement %+v", st)
	}
	if len(st.Predicate.Verdicts) != 1 || st.Predicate.Verdicts[0].Metrics[0].Canary != 0.001 {
		t.Fatalf("verdict numbers lost: %+v", st.Predicate.Verdicts)
	}
}

// TestVerifyRefusesEveryChangedByte flips each byte of the signed payload in turn.
func TestVerifyRefusesEveryChangedByte(t *testing.T) {
	data, pub := signed(t)
	var env evidence.Envelope
	if err := json.Unmarshal(data, &env); err != nil {
		t.Fatal(err)
	}
	payload, _ := base64.StdEncoding.DecodeString(env.Payload)
	for i := range payload {
		changed := bytes.Clone(payload)
		changed[i] ^= 0x01
		env.Payload = base64.StdEncoding.EncodeToString(changed)
		tampered, _ := json.Marshal(env)
		if _, err := evidence.Verify(tampered, pub); !errors.Is(err, evidence.ErrInvalid) {
			t.Fatalf("byte %d of the payload changed, and Verify said %v", i, err)
		}
	}
}

func TestVerifyRefuses(t *testing.T) {
	data, pub := signed(t)
	otherPub, _, _ := ed25519.GenerateKey(rand.Reader)
	var env evidence.Envelope
	_ = json.Unmarshal(data, &env)
	sig, _ := base64.StdEncoding.DecodeString(env.Signatures[0].Sig)
	sig[0] ^= 0x80
	badSig := env
	badSig.Signatures = []evidence.Signature{{KeyID: env.Signatures[0].KeyID, Sig: base64.StdEncoding.EncodeToString(sig)}}
	badSigData, _ := json.Marshal(badSig)
	otherType := env
	otherType.PayloadType = "text/plain"
	otherTypeData, _ := json.Marshal(otherType)
	noSig := env
	noSig.Signatures = nil
	noSigData, _ := json.Marshal(noSig)
	tests := []struct {
		name string
		data []byte
		key  ed25519.PublicKey
	}{
		{"another fleet's key", data, otherPub},
		{"a changed signature", badSigData, pub},
		{"another payload type", otherTypeData, pub},
		{"no signature", noSigData, pub},
		{"not JSON", []byte("evidence"), pub},
		{"an unknown field", append([]byte(`{"extra":1,`), data[1:]...), pub},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := evidence.Verify(tt.data, tt.key); !errors.Is(err, evidence.ErrInvalid) {
				t.Fatalf("Verify = %v, want ErrInvalid", err)
			}
		})
	}
}
