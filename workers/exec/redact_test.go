package exec

import (
	"bytes"
	"strings"
	"testing"
)

func TestRedactor(t *testing.T) {
	tests := []struct {
		name    string
		secrets []string
		in      string
		want    string
	}{
		{"none", nil, "hello s3cr3t", "hello s3cr3t"},
		{"one", []string{"s3cr3t"}, "token=s3cr3t end", "token=*** end"},
		{"repeated", []string{"s3cr3t"}, "s3cr3ts3cr3t s3cr3t", "****** ***"},
		{"at end", []string{"s3cr3t"}, "x s3cr3t", "x ***"},
		{"prefix only", []string{"s3cr3t"}, "s3cr3", "s3cr3"},
		{"two", []string{"alpha-key", "beta-key"}, "beta-key alpha-key", "*** ***"},
		{"longest at one offset", []string{"abcd", "abcdef"}, "xabcdefx", "x***x"},
		{"overlapping, leftmost wins", []string{"abcdef", "defghi"}, "abcdefghi", "***ghi"},
		{"too short to redact", []string{"abc"}, "abc abc", "abc abc"},
		{"short beside long", []string{"ab", "longsecret"}, "ab longsecret", "ab ***"},
		{"multi-line value", []string{"line1\nline2"}, "a line1\nline2 b", "a *** b"},
		{"duplicate secret", []string{"s3cr3t", "s3cr3t"}, "s3cr3t", "***"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// Every way of cutting the input in two writes gives the same output.
			for cut := 0; cut <= len(tc.in); cut++ {
				var out bytes.Buffer
				r := NewRedactor(&out, tc.secrets)
				for _, part := range []string{tc.in[:cut], tc.in[cut:]} {
					if n, err := r.Write([]byte(part)); err != nil || n != len(part) {
						t.Fatalf("Write(%q) = %d, %v", part, n, err)
					}
				}
				if err := r.Close(); err != nil {
					t.Fatal(err)
				}
				if out.String() != tc.want {
					t.Errorf("cut at %d: got %q, want %q", cut, out.String(), tc.want)
				}
			}
		})
	}
}

func TestRedactorByteAtATime(t *testing.T) {
	var out bytes.Buffer
	r := NewRedactor(&out, []string{"hunter22", "correct-horse"})
	in := "pw=hunter22; phrase=correct-horse; hunter2 is not it\n"
	for i := range len(in) {
		if _, err := r.Write([]byte{in[i]}); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if want := "pw=***; phrase=***; hunter2 is not it\n"; out.String() != want {
		t.Errorf("got %q, want %q", out.String(), want)
	}
}

// Only bytes that could begin a secret are held back; the rest reaches the log at once.
func TestRedactorHoldsBackOnlyTheTail(t *testing.T) {
	var out bytes.Buffer
	r := NewRedactor(&out, []string{"0123456789"})
	if _, err := r.Write([]byte(strings.Repeat("x", 100))); err != nil {
		t.Fatal(err)
	}
	// The longest form of the secret is its padded base64, 16 bytes.
	if got := out.Len(); got != 85 {
		t.Errorf("passed on %d bytes before Close, want 85 (100 - len(longest form) + 1)", got)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if got := out.Len(); got != 100 {
		t.Errorf("passed on %d bytes after Close, want 100", got)
	}
}

// A secret is masked in the forms output carries it in: escaped in JSON (go test -json),
// URL-encoded, base64-encoded.
func TestRedactorMasksEveryForm(t *testing.T) {
	const secret = `p@ss "w/rd" <x>`
	for _, form := range Forms([]string{secret}) {
		var out bytes.Buffer
		r := NewRedactor(&out, []string{secret})
		_, _ = r.Write([]byte(`{"Output":"token ` + form + ` end"}`))
		_ = r.Close()
		if strings.Contains(out.String(), form) {
			t.Errorf("form %q passed: %s", form, out.String())
		}
		if got := MaskString("a "+form+" b", []string{secret}); got != "a *** b" {
			t.Errorf("MaskString(%q) = %q", form, got)
		}
	}
}
