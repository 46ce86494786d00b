package governance

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
)

// Baseline is a set of accepted findings, by fingerprint: an old repository adopts the gate
// without a wall of red, and only new findings fail it.
type Baseline struct {
	File         string
	fingerprints map[string]bool
}

// baselineVersion is the format of baseline files.
const baselineVersion = 1

type baselineFile struct {
	Version  int             `json:"version"`
	Tool     string          `json:"tool"`
	Findings []baselineEntry `json:"findings"`
}

// baselineEntry keeps what a reviewer needs to recognise a finding; never its excerpt, so
// a baseline holds no secret.
type baselineEntry struct {
	Fingerprint string `json:"fingerprint"`
	Rule        string `json:"rule"`
	Detector    string `json:"detector,omitempty"`
	File        string `json:"file"`
	Line        int    `json:"line"`
	Message     string `json:"message"`
}

// LoadBaseline reads a baseline file.
func LoadBaseline(file string) (*Baseline, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadBaseline, err)
	}
	defer f.Close()
	return ReadBaseline(file, f)
}

// ReadBaseline parses a baseline; file names it in errors and suppressions.
func ReadBaseline(file string, r io.Reader) (*Baseline, error) {
	var bf baselineFile
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&bf); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrBadBaseline, file, err)
	}
	if bf.Version != baselineVersion {
		return nil, fmt.Errorf("%w: %s: version %d, this sluice reads version %d", ErrBadBaseline, file, bf.Version, baselineVersion)
	}
	b := &Baseline{File: file, fingerprints: make(map[string]bool, len(bf.Findings))}
	for i, e := range bf.Findings {
		if e.Fingerprint == "" {
			return nil, fmt.Errorf("%w: %s: finding %d has no fingerprint", ErrBadBaseline, file, i+1)
		}
		b.fingerprints[e.Fingerprint] = true
	}
	return b, nil
}

// Len is the number of accepted findings.
func (b *Baseline) Len() int {
	if b == nil {
		return 0
	}
	return len(b.fingerprints)
}

func (b *Baseline) has(fp string) bool { return b != nil && b.fingerprints[fp] }

// WriteBaseline writes the report's findings that are not suppressed inline as a baseline
// (those already in a baseline stay in it).
func WriteBaseline(w io.Writer, r *Report) error {
	bf := baselineFile{Version: baselineVersion, Tool: "sluice governance", Findings: []baselineEntry{}}
	for _, f := range r.Findings {
		if f.Suppression != nil && f.Suppression.Kind == SuppressedInSource {
			continue
		}
		bf.Findings = append(bf.Findings, baselineEntry{
			Fingerprint: f.Fingerprint, Rule: f.Rule, Detector: f.Detector, File: f.File, Line: f.Line, Message: f.Message,
		})
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(bf); err != nil {
		return fmt.Errorf("write baseline: %w", err)
	}
	return nil
}
