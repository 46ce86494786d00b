package testkind

import (
	"strconv"
	"strings"
)

// KeyToken makes s usable inside a KV key: characters outside [-/_=.a-zA-Z0-9] become '_',
// and empty dot-separated tokens (a leading, trailing or doubled '.') become '_'.
func KeyToken(s string) string {
	b := []byte(s)
	for i, c := range b {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9',
			c == '-', c == '/', c == '_', c == '=', c == '.':
		default:
			b[i] = '_'
		}
	}
	parts := strings.Split(string(b), ".")
	for i, p := range parts {
		if p == "" {
			parts[i] = "_"
		}
	}
	return strings.Join(parts, ".")
}

// TimingKey is the sluice_timings key of a unit's duration: <pipeline>.<stage>.<unit>.
func TimingKey(pipeline, stage, unit string) string {
	return KeyToken(pipeline) + "." + KeyToken(stage) + "." + KeyToken(unit)
}

// SplitKey is the sluice_timings key holding the split all shards of one attempt of a
// stage use: split.<run>.<stage>.<attempt>.
func SplitKey(run, stage string, attempt int32) string {
	return "split." + KeyToken(run) + "." + KeyToken(stage) + "." + strconv.Itoa(int(attempt))
}
