package bus

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// pki writes a CA, a server certificate for 127.0.0.1 and a client certificate to dir.
func pki(t *testing.T, dir string) (ca, srvCert, srvKey, cliCert, cliKey string) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "sluice test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caParsed, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	ca = writePEM(t, dir, "ca.pem", "CERTIFICATE", caDER)
	issue := func(name string, serial int64, usage x509.ExtKeyUsage) (string, string) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
			IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caParsed, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		keyDER, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		return writePEM(t, dir, name+".pem", "CERTIFICATE", der), writePEM(t, dir, name+"-key.pem", "EC PRIVATE KEY", keyDER)
	}
	srvCert, srvKey = issue("server", 2, x509.ExtKeyUsageServerAuth)
	cliCert, cliKey = issue("client", 3, x509.ExtKeyUsageClientAuth)
	return ca, srvCert, srvKey, cliCert, cliKey
}

func writePEM(t *testing.T, dir, name, typ string, der []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestConnectTLS runs a server from a config file that requires mutual TLS.
func TestConnectTLS(t *testing.T) {
	dir := t.TempDir()
	ca, srvCert, srvKey, cliCert, cliKey := pki(t, dir)
	conf := filepath.Join(dir, "nats.conf")
	body := fmt.Sprintf("tls {\n  cert_file: %q\n  key_file: %q\n  ca_file: %q\n  verify: true\n}\n", srvCert, srvKey, ca)
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	e, err := StartEmbedded(t.Context(), EmbeddedOptions{
		DataDir: t.TempDir(), Listen: "127.0.0.1:-1", ConfigFile: conf, Logger: quietLogger(),
	})
	if err != nil {
		t.Fatalf("StartEmbedded with TLS config: %v", err)
	}
	t.Cleanup(e.Shutdown)

	tests := []struct {
		name        string
		o           ConnectOptions
		ok          bool
		unreachable bool
	}{
		{"client certificate", ConnectOptions{TLSCA: ca, TLSCert: cliCert, TLSKey: cliKey}, true, false},
		{"no client certificate", ConnectOptions{TLSCA: ca}, false, false},
		{"unknown CA", ConnectOptions{TLSCert: cliCert, TLSKey: cliKey}, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.o.URL = e.ClientURL()
			tt.o.Timeout = 2 * time.Second
			nc, err := Connect(t.Context(), tt.o)
			if tt.ok {
				if err != nil {
					t.Fatalf("Connect: %v", err)
				}
				nc.Close()
				return
			}
			if err == nil {
				nc.Close()
				t.Fatal("Connect succeeded, want a TLS error")
			}
			if errors.Is(err, ErrUnreachable) != tt.unreachable {
				t.Fatalf("Connect error %v: unreachable = %v, want %v", err, !tt.unreachable, tt.unreachable)
			}
		})
	}
}

// TestConnectSilentServer: something listens but never speaks NATS.
func TestConnectSilentServer(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	// The accepted connections stay open and silent until the listener's owner returns.
	done := make(chan struct{})
	defer close(done)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { <-done; c.Close() }()
		}
	}()
	url := "nats://" + l.Addr().String()
	_, err = Connect(t.Context(), ConnectOptions{URL: url, Timeout: 200 * time.Millisecond})
	if !errors.Is(err, ErrUnreachable) {
		t.Fatalf("error %v does not wrap ErrUnreachable", err)
	}
}

// TestConnectAuthRefused: a server that answers but refuses us is not "unreachable".
func TestConnectAuthRefused(t *testing.T) {
	conf := filepath.Join(t.TempDir(), "nats.conf")
	if err := os.WriteFile(conf, []byte("authorization { user: sluice, password: secret }\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e, err := StartEmbedded(t.Context(), EmbeddedOptions{
		DataDir: t.TempDir(), Listen: "127.0.0.1:-1", ConfigFile: conf, Logger: quietLogger(),
	})
	if err != nil {
		t.Fatalf("StartEmbedded with auth config: %v", err)
	}
	t.Cleanup(e.Shutdown)
	_, err = Connect(t.Context(), ConnectOptions{URL: e.ClientURL()})
	if err == nil || errors.Is(err, ErrUnreachable) {
		t.Fatalf("Connect = %v, want an authorization error that is not ErrUnreachable", err)
	}
	if !strings.Contains(err.Error(), e.ClientURL()) {
		t.Fatalf("error %q does not name the URL", err)
	}
}
