package exec

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/url"
	"sort"
	"strings"
	"sync"
)

// Mask replaces every secret value in redacted output.
const Mask = "***"

// MinSecretLen is the shortest secret value that is redacted. Shorter values ("1", "yes",
// "dev") occur everywhere in ordinary output: masking them would mangle logs while hiding
// nothing an attacker could not guess.
const MinSecretLen = 4

// Redactor is an io.WriteCloser that replaces every secret value with Mask before passing
// the bytes on, also when a value is split across two writes: it holds back the last
// len(longest secret)-1 bytes until the next write or Close shows whether they start a
// secret. It is safe for concurrent use.
type Redactor struct {
	mu      sync.Mutex
	w       io.Writer
	secrets [][]byte // longest first, so the longest of two secrets at one offset wins
	keep    int      // bytes held back: len(longest)-1
	pending []byte
	out     []byte // reused output buffer
}

// Forms are the ways a secret shows in output besides itself: escaped in a JSON string (as
// `go test -json` and reports write it), URL-encoded (query and path), and base64 (standard
// and URL alphabets, padded and not).
func Forms(secrets []string) []string {
	var out []string
	for _, s := range secrets {
		j, _ := json.Marshal(s)
		var raw bytes.Buffer
		enc := json.NewEncoder(&raw)
		enc.SetEscapeHTML(false)
		_ = enc.Encode(s)
		r := bytes.TrimSpace(raw.Bytes())
		out = append(out, s, string(j[1:len(j)-1]), string(r[1:len(r)-1]), url.QueryEscape(s), url.PathEscape(s),
			base64.StdEncoding.EncodeToString([]byte(s)), base64.RawStdEncoding.EncodeToString([]byte(s)),
			base64.URLEncoding.EncodeToString([]byte(s)), base64.RawURLEncoding.EncodeToString([]byte(s)))
	}
	return out
}

// MaskString replaces every form of every secret in s.
func MaskString(s string, secrets []string) string {
	for _, f := range sortedForms(secrets) {
		s = strings.ReplaceAll(s, f, Mask)
	}
	return s
}

func sortedForms(secrets []string) []string {
	var forms []string
	seen := map[string]bool{}
	for _, f := range Forms(secrets) {
		if len(f) >= MinSecretLen && !seen[f] {
			seen[f] = true
			forms = append(forms, f)
		}
	}
	sort.Slice(forms, func(i, j int) bool { return len(forms[i]) > len(forms[j]) })
	return forms
}

// NewRedactor returns a Redactor writing to w that masks every form of the secrets (see
// Forms). Values shorter than MinSecretLen and duplicates are ignored; with none left the
// Redactor only passes bytes through.
func NewRedactor(w io.Writer, secrets []string) *Redactor {
	r := &Redactor{w: w}
	for _, s := range sortedForms(secrets) {
		r.secrets = append(r.secrets, []byte(s))
	}
	if len(r.secrets) > 0 {
		r.keep = len(r.secrets[0]) - 1
	}
	return r
}

// Write redacts p and writes what is certain not to start a secret. It reports len(p) on
// success, as the bytes are accepted even when some are held back.
func (r *Redactor) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.secrets) == 0 {
		return r.w.Write(p)
	}
	data := append(r.pending, p...)
	// A secret starting before cut lies wholly inside data (it is at most keep+1 bytes
	// long), so everything before cut can be decided now.
	cut := len(data) - r.keep
	if cut < 0 {
		cut = 0
	}
	end := r.redact(data, cut)
	// data may share r.pending's array; append copies with memmove, so the overlap is safe.
	r.pending = append(r.pending[:0], data[end:]...)
	if err := r.flush(); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Flush writes the held-back tail, redacted, as at Close, then flushes the underlying
// writer if it can: the step that wrote the output has ended, and a secret does not span
// two steps.
func (r *Redactor) Flush() error {
	if err := r.Close(); err != nil {
		return err
	}
	if f, ok := r.w.(interface{ Flush() error }); ok {
		return f.Flush()
	}
	return nil
}

// Close writes the held-back tail, redacted. It does not close the underlying writer.
func (r *Redactor) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.pending) == 0 {
		return nil
	}
	r.redact(r.pending, len(r.pending))
	r.pending = r.pending[:0]
	return r.flush()
}

// redact appends to r.out the redacted form of data up to cut, extended to the end of a
// secret that starts before cut and ends after it, and returns how far it consumed.
func (r *Redactor) redact(data []byte, cut int) int {
	i := 0
	for i < cut {
		at, n := r.next(data[i:])
		if at < 0 || i+at >= cut {
			r.out = append(r.out, data[i:cut]...)
			return cut
		}
		r.out = append(r.out, data[i:i+at]...)
		r.out = append(r.out, Mask...)
		i += at + n
	}
	return i
}

// next finds the leftmost secret in data (the longest at equal offsets): its offset and
// length, or -1.
func (r *Redactor) next(data []byte) (at, n int) {
	at = -1
	for _, s := range r.secrets {
		if k := bytes.Index(data, s); k >= 0 && (at < 0 || k < at) {
			at, n = k, len(s)
		}
	}
	return at, n
}

func (r *Redactor) flush() error {
	if len(r.out) == 0 {
		return nil
	}
	_, err := r.w.Write(r.out)
	r.out = r.out[:0]
	return err
}
