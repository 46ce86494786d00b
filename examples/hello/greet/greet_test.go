package greet

import (
	"strings"
	"testing"
)

func TestGreeting(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"name", "Ada", "hello, Ada"},
		{"trimmed", "  Ada \n", "hello, Ada"},
		{"empty", "", "hello, world"},
		{"blank", "   ", "hello, world"},
		{"unicode", "Grüße", "hello, Grüße"},
		{"truncated", strings.Repeat("é", MaxNameLen+10), "hello, " + strings.Repeat("é", MaxNameLen)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Greeting(tt.in); got != tt.want {
				t.Errorf("Greeting(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}
