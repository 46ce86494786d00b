package testreport

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

// What WriteTimings writes, ReadTimings reads back, to the millisecond.
func TestTimingsRoundTrip(t *testing.T) {
	in := map[string]time.Duration{"example.com/a": 1500 * time.Millisecond, "example.com/b": 2*time.Second + 400*time.Microsecond, "c": 0}
	var buf bytes.Buffer
	if err := WriteTimings(&buf, in); err != nil {
		t.Fatal(err)
	}
	if want := "{\n  \"c\": 0,\n  \"example.com/a\": 1.5,\n  \"example.com/b\": 2\n}\n"; buf.String() != want {
		t.Fatalf("wrote %q, want %q", buf.String(), want)
	}
	got, err := ReadTimings(&buf)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]time.Duration{"example.com/a": 1500 * time.Millisecond, "example.com/b": 2 * time.Second, "c": 0}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("read %v, want %v", got, want)
	}
}

func TestReadTimingsErrors(t *testing.T) {
	for _, tc := range []struct {
		name, input, want string
	}{
		{"not JSON", "{\n  \"a\": 1,\n  oops\n}", "line 3, column 3: "},
		{"seconds as a string", "{\"a\": \"1s\"}", "line 1, column 10: "},
		{"not an object", "[1, 2]", "line 1, column 1: "},
		{"negative seconds", `{"a": 1, "b": -2}`, `unit "b" has -2 seconds`},
		{"empty", "", "bad timings: want {\"UNIT\": SECONDS, ...}: unexpected end of JSON input"},
		{"cut short after a newline", "{\"a\": 1,\n", "line 2, column 1: "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ReadTimings(strings.NewReader(tc.input))
			if !errors.Is(err, ErrBadTimings) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ReadTimings: %v, want ErrBadTimings saying %q", err, tc.want)
			}
		})
	}
}
