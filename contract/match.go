package contract

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/big"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// Mismatch is one expectation a response did not meet.
type Mismatch struct {
	Field string // "status", "header Content-Type", "body.id", "capture payment_id"
	Want  string
	Got   string
}

// pathStep is one segment of a JSON path: an object key or an array index.
type pathStep struct {
	key   string
	index int
	isIdx bool
}

// parsePath reads "id", "$.payments[0].id", "payments.0.id"; "" and "$" are the whole
// body. Keys with dots or brackets can be quoted: `["a.b"]`.
func parsePath(path string) ([]pathStep, error) {
	s := strings.TrimPrefix(strings.TrimPrefix(path, "$"), ".")
	var steps []pathStep
	for s != "" {
		switch {
		case strings.HasPrefix(s, "["):
			end := strings.IndexByte(s, ']')
			if end < 0 {
				return nil, fmt.Errorf("path %q: unclosed [", path)
			}
			inner := s[1:end]
			if n, err := strconv.Atoi(inner); err == nil && n >= 0 {
				steps = append(steps, pathStep{index: n, isIdx: true})
			} else if key, err := strconv.Unquote(inner); err == nil {
				steps = append(steps, pathStep{key: key})
			} else {
				return nil, fmt.Errorf("path %q: [%s] is neither an index nor a quoted key", path, inner)
			}
			s = strings.TrimPrefix(s[end+1:], ".")
		default:
			end := strings.IndexAny(s, ".[")
			if end < 0 {
				end = len(s)
			}
			seg := s[:end]
			if seg == "" {
				return nil, fmt.Errorf("path %q: empty segment", path)
			}
			if n, err := strconv.Atoi(seg); err == nil && n >= 0 {
				steps = append(steps, pathStep{index: n, isIdx: true})
			} else {
				steps = append(steps, pathStep{key: seg})
			}
			s = strings.TrimPrefix(s[end:], ".")
		}
	}
	return steps, nil
}

// lookupPath follows path in v. When a step is missing it returns false and what the
// enclosing value holds instead, for messages.
func lookupPath(v any, path string) (any, bool, string) {
	steps, err := parsePath(path)
	if err != nil {
		return nil, false, err.Error()
	}
	for _, st := range steps {
		switch x := v.(type) {
		case map[string]any:
			next, ok := x[st.key]
			if st.isIdx {
				next, ok = x[strconv.Itoa(st.index)]
			}
			if !ok {
				keys := make([]string, 0, len(x))
				for k := range x {
					keys = append(keys, k)
				}
				slices.Sort(keys)
				return nil, false, "the object has " + describeKeys(keys)
			}
			v = next
		case []any:
			if !st.isIdx || st.index >= len(x) {
				return nil, false, fmt.Sprintf("the array has %d elements", len(x))
			}
			v = x[st.index]
		default:
			return nil, false, "its parent is " + jsonType(v)
		}
	}
	return v, true, ""
}

func describeKeys(keys []string) string {
	if len(keys) == 0 {
		return "no fields"
	}
	return "fields " + strings.Join(keys, ", ")
}

// toJSON turns a decoded YAML value into the form jsonschema.UnmarshalJSON produces
// (numbers as json.Number), so expected and actual values compare alike.
func toJSON(v any) (any, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("not representable as JSON: %w", err)
	}
	return jsonschema.UnmarshalJSON(bytes.NewReader(b))
}

// jsonType names v's JSON type; numbers that are whole are "integer".
func jsonType(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case string:
		return "string"
	case json.Number:
		if _, ok := new(big.Int).SetString(string(x), 10); ok {
			return "integer"
		}
		if f, ok := new(big.Float).SetString(string(x)); ok && f.IsInt() {
			return "integer"
		}
		return "number"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return fmt.Sprintf("%T", v)
}

func isType(v any, want string) bool {
	got := jsonType(v)
	return got == want || (want == "number" && got == "integer")
}

// jsonEqual compares two JSON values; numbers compare by value (1 equals 1.0).
func jsonEqual(a, b any) bool {
	switch x := a.(type) {
	case json.Number:
		y, ok := b.(json.Number)
		if !ok {
			return false
		}
		fx, okx := new(big.Float).SetString(string(x))
		fy, oky := new(big.Float).SetString(string(y))
		return okx && oky && fx.Cmp(fy) == 0
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, xv := range x {
			yv, ok := y[k]
			if !ok || !jsonEqual(xv, yv) {
				return false
			}
		}
		return true
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !jsonEqual(x[i], y[i]) {
				return false
			}
		}
		return true
	}
	return a == b
}

// render shows a JSON value in a message, shortened.
func render(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return shorten(string(b), 120)
}

func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// check applies m to a value; present says whether the path exists. The resolved equals
// and equals_request values come in want and wantReq. It returns what was expected, for a
// mismatch, or "" when the value satisfies m.
func (m *Matcher) check(v any, present bool, want, wantReq any, hasWantReq bool) (expected string, ok bool) {
	var parts []string
	ok = true
	if m.Present != nil && !*m.Present {
		return "absent", !present
	}
	if m.Present != nil || !present {
		parts = append(parts, "present")
		ok = ok && present
	}
	if m.Type != "" {
		parts = append(parts, "of type "+m.Type)
		ok = ok && present && isType(v, m.Type)
	}
	if m.Regex != nil {
		parts = append(parts, "a string matching "+m.Regex.String())
		s, isStr := v.(string)
		ok = ok && present && isStr && m.Regex.MatchString(s)
	}
	if m.Enum != nil {
		vals := make([]string, len(m.Enum))
		in := false
		for i, e := range m.Enum {
			vals[i] = render(e)
			in = in || jsonEqual(e, v)
		}
		parts = append(parts, "one of "+strings.Join(vals, ", "))
		ok = ok && present && in
	}
	if m.HasEquals {
		parts = append(parts, "equal to "+render(want))
		ok = ok && present && jsonEqual(want, v)
	}
	if m.EqualsRequest != "" {
		if hasWantReq {
			parts = append(parts, fmt.Sprintf("equal to the request's %s (%s)", m.EqualsRequest, render(wantReq)))
		} else {
			parts = append(parts, fmt.Sprintf("equal to the request's %s (which the request lacks)", m.EqualsRequest))
		}
		ok = ok && present && hasWantReq && jsonEqual(wantReq, v)
	}
	return strings.Join(dedupe(parts), " and "), ok
}

func dedupe(parts []string) []string {
	if len(parts) > 1 && parts[0] == "present" {
		return parts[1:]
	}
	return parts
}

// varRef is a ${NAME} reference; $${ escapes a literal ${.
var varRef = regexp.MustCompile(`\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)

// substitute replaces ${NAME} in s using lookup, naming every undefined variable.
func substitute(s string, lookup func(string) (any, bool)) (string, error) {
	var missing []string
	out := varRef.ReplaceAllStringFunc(s, func(ref string) string {
		if ref == "$${" {
			return "${"
		}
		name := ref[2 : len(ref)-1]
		v, ok := lookup(name)
		if !ok {
			missing = append(missing, name)
			return ref
		}
		if str, isStr := v.(string); isStr {
			return str
		}
		return render(v)
	})
	if len(missing) > 0 {
		return "", fmt.Errorf("undefined variable %s (not captured by an earlier step, not in the contract's vars, not in the environment)", "${"+strings.Join(missing, "}, ${")+"}")
	}
	return out, nil
}

// substituteJSON substitutes inside every string of a JSON value. A string that is exactly
// one reference takes the variable's value with its type.
func substituteJSON(v any, lookup func(string) (any, bool)) (any, error) {
	switch x := v.(type) {
	case string:
		if m := varRef.FindStringSubmatch(x); m != nil && m[0] == x && m[1] != "" {
			val, ok := lookup(m[1])
			if !ok {
				return substitute(x, lookup)
			}
			return val, nil
		}
		return substitute(x, lookup)
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			s, err := substituteJSON(e, lookup)
			if err != nil {
				return nil, err
			}
			out[k] = s
		}
		return out, nil
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			s, err := substituteJSON(e, lookup)
			if err != nil {
				return nil, err
			}
			out[i] = s
		}
		return out, nil
	}
	return v, nil
}

// schemaMismatches turns a validation error into one mismatch per failed leaf keyword.
func schemaMismatches(err error, source string) []Mismatch {
	ve, ok := err.(*jsonschema.ValidationError)
	if !ok {
		return []Mismatch{{Field: "body", Want: "valid against " + source, Got: err.Error()}}
	}
	var out []Mismatch
	for _, u := range ve.BasicOutput().Errors {
		if u.Error == nil {
			continue
		}
		msg := u.Error.String()
		if strings.HasPrefix(msg, "validation failed") || strings.HasPrefix(msg, "allOf failed") {
			continue
		}
		out = append(out, Mismatch{
			Field: pointerToPath(u.InstanceLocation),
			Want:  fmt.Sprintf("%s at %s", source, u.KeywordLocation),
			Got:   msg,
		})
	}
	if len(out) == 0 {
		out = append(out, Mismatch{Field: "body", Want: "valid against " + source, Got: ve.Error()})
	}
	// The validator visits an object's properties in map order.
	slices.SortStableFunc(out, func(a, b Mismatch) int { return strings.Compare(a.Field+a.Want, b.Field+b.Want) })
	return out
}

// pointerToPath renders a JSON pointer as the dotted path matchers use: /a/0/b -> body.a[0].b.
func pointerToPath(ptr string) string {
	var b strings.Builder
	b.WriteString("body")
	if ptr == "" {
		return b.String()
	}
	for _, seg := range strings.Split(strings.TrimPrefix(ptr, "/"), "/") {
		seg = strings.ReplaceAll(strings.ReplaceAll(seg, "~1", "/"), "~0", "~")
		if _, err := strconv.Atoi(seg); err == nil {
			b.WriteString("[" + seg + "]")
			continue
		}
		b.WriteString("." + seg)
	}
	return b.String()
}
