package testreport

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"time"
)

// WriteTimings writes durations as a timings file: one JSON object, each unit's seconds to
// the millisecond, units sorted.
func WriteTimings(w io.Writer, timings map[string]time.Duration) error {
	secs := make(map[string]float64, len(timings))
	for u, d := range timings {
		secs[u] = d.Round(time.Millisecond).Seconds()
	}
	data, err := json.MarshalIndent(secs, "", "  ")
	if err != nil {
		return fmt.Errorf("encode timings: %w", err)
	}
	if _, err := w.Write(append(data, '\n')); err != nil {
		return fmt.Errorf("write timings: %w", err)
	}
	return nil
}

// ReadTimings reads a timings file, as WriteTimings writes it. An error says where in the
// file it went wrong, and wraps ErrBadTimings when the content is at fault.
func ReadTimings(r io.Reader) (map[string]time.Duration, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("read timings: %w", err)
	}
	var secs map[string]float64
	if err := json.Unmarshal(data, &secs); err != nil {
		return nil, fmt.Errorf("%s%w: %w", position(data, err), ErrBadTimings, err)
	}
	out := make(map[string]time.Duration, len(secs))
	for _, u := range slices.Sorted(maps.Keys(secs)) {
		s := secs[u]
		if s < 0 || s > math.MaxInt64/float64(time.Second) {
			return nil, fmt.Errorf("%w: unit %q has %v seconds", ErrBadTimings, u, s)
		}
		out[u] = time.Duration(s * float64(time.Second))
	}
	return out, nil
}

// position is "line L, column C: " of a JSON decoding error that has an offset, else "".
func position(data []byte, err error) string {
	if len(data) == 0 {
		return ""
	}
	var off int64
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntax):
		off = syntax.Offset
	case errors.As(err, &typ):
		off = typ.Offset
	default:
		return ""
	}
	// The offset is just past the byte at fault.
	before := data[:min(max(off, 0), int64(len(data)))]
	line := 1 + bytes.Count(before, []byte("\n"))
	// An input cut short after a newline is at fault at the start of the next line.
	col := max(len(before)-bytes.LastIndexByte(before, '\n')-1, 1)
	return fmt.Sprintf("line %d, column %d: ", line, col)
}
