package tls

import "testing"

func TestClientKey(t *testing.T) {
	// want+1 GOV-001/test
	key := `-----BEGIN EC PRIVATE KEY-----
@@PEM_BODY@@
-----END EC PRIVATE KEY-----`
	if key == "" {
		t.Fatal("no key")
	}
}
