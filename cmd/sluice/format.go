package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	sluicev1 "github.com/sluice-ci/sluice/proto/sluice/v1"
)

// fmtDuration prints a duration at the precision a person reads: 850ms, 1.2s, 3m4s.
func fmtDuration(d time.Duration) string {
	switch {
	case d < 0:
		return "-"
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}

// span is the duration between two timestamps, or "" when either is unset.
func span(from, to *timestamppb.Timestamp) string {
	if from == nil || to == nil {
		return ""
	}
	return fmtDuration(to.AsTime().Sub(from.AsTime()))
}

func fmtTime(ts *timestamppb.Timestamp) string {
	if ts == nil {
		return "-"
	}
	return ts.AsTime().Local().Format("2006-01-02 15:04:05")
}

// newTable writes aligned columns; the caller flushes.
func newTable(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 4, 2, ' ', 0) }

// writeJSON prints m as protojson: one object per line, the form `jq` and log shippers read.
func writeJSON(w io.Writer, m proto.Message) error {
	b, err := protojson.Marshal(m)
	if err != nil {
		return fmt.Errorf("encode %s as JSON: %w", m.ProtoReflect().Descriptor().Name(), err)
	}
	// protojson may vary whitespace between runs; compact it so the output is stable.
	var out bytes.Buffer
	if err := json.Compact(&out, b); err != nil {
		return fmt.Errorf("compact JSON: %w", err)
	}
	out.WriteByte('\n')
	_, err = w.Write(out.Bytes())
	return err
}

// writeStageTable prints one line per stage of a run.
func writeStageTable(w io.Writer, run *sluicev1.RunState) error {
	kinds := map[string]string{}
	for _, s := range run.GetSpec().GetStages() {
		kinds[s.GetName()] = s.GetKind().Slug()
	}
	t := newTable(w)
	fmt.Fprintln(t, "STAGE\tKIND\tSTATUS\tATTEMPT\tDURATION\tMESSAGE")
	for _, s := range run.GetStages() {
		attempt := "-"
		if s.GetAttempt() > 0 {
			attempt = fmt.Sprint(s.GetAttempt())
		}
		dur := span(s.GetStartedAt(), s.GetFinishedAt())
		if dur == "" {
			dur = "-"
		}
		fmt.Fprintf(t, "%s\t%s\t%s\t%s\t%s\t%s\n", s.GetName(), kinds[s.GetName()], s.GetStatus().Short(), attempt, dur, oneLine(s.GetMessage()))
	}
	return t.Flush()
}

// oneLine keeps a table cell on its line.
func oneLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i] + " ..."
	}
	return s
}
