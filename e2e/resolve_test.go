package e2e

import (
	"strings"
	"testing"
)

// A journey visits web pages only: a file: URL would let it read the worker's machine into
// its screenshots and checks.
func TestResolveVisitsWebPagesOnly(t *testing.T) {
	tests := []struct {
		base, ref, want, err string
	}{
		{"http://app:8080/", "/login", "http://app:8080/login", ""},
		{"", "https://example.test/a", "https://example.test/a", ""},
		{"http://app/", "file:///etc/passwd", "", "http and https pages only"},
		{"http://app/", "javascript:alert(1)", "", "http and https pages only"},
		{"file:///", "etc/passwd", "", "want an http or https URL"},
	}
	for _, tt := range tests {
		got, err := resolve(tt.base, tt.ref)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("resolve(%q, %q) = %q, %v; want an error saying %q", tt.base, tt.ref, got, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("resolve(%q, %q) = %q, %v; want %q", tt.base, tt.ref, got, err, tt.want)
		}
	}
}
