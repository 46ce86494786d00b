package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
	"gopkg.in/yaml.v3"

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

// output is a command's -o: a table for people (the default), or json or yaml for scripts.
// Records print as one document; lists as one document per item (JSON Lines, YAML documents
// separated by ---), so a long list streams and `jq` reads it as it comes.
type output struct {
	format string
	json   bool // the older --json, kept as a hidden alias of -o json
}

func addOutputFlag(cmd *cobra.Command, o *output, what string) {
	cmd.Flags().StringVarP(&o.format, "output", "o", "table", "table, json (protojson "+what+", one per line) or yaml")
	cmd.Flags().BoolVar(&o.json, "json", false, "same as -o json")
	_ = cmd.Flags().MarkHidden("json")
	_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{"table", "json", "yaml"}, cobra.ShellCompDirectiveNoFileComp))
}

// check resolves --json and refuses an unknown format.
func (o *output) check(cmd *cobra.Command) error {
	if o.json {
		if cmd.Flags().Changed("output") && o.format != "json" {
			return usageErrorf(cmd, "--json and -o %s disagree: pass one", o.format)
		}
		o.format = "json"
	}
	switch o.format {
	case "table", "json", "yaml":
		return nil
	}
	return usageErrorf(cmd, "-o %q: want table, json or yaml", o.format)
}

func (o output) table() bool { return o.format == "table" }

// write prints m as one json or yaml document.
func (o output) write(w io.Writer, m proto.Message) error {
	if o.format != "yaml" {
		return writeJSON(w, m)
	}
	b, err := protojson.Marshal(m)
	if err != nil {
		return fmt.Errorf("encode %s: %w", m.ProtoReflect().Descriptor().Name(), err)
	}
	var doc any
	if err := json.Unmarshal(b, &doc); err != nil {
		return err
	}
	return writeYAML(w, doc)
}

// writeValue prints a plain value (not a protobuf message) as one json or yaml document.
func (o output) writeValue(w io.Writer, v any) error {
	if o.format == "yaml" {
		return writeYAML(w, v)
	}
	return json.NewEncoder(w).Encode(v)
}

func writeYAML(w io.Writer, v any) error {
	out, err := yaml.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode YAML: %w", err)
	}
	_, err = fmt.Fprintf(w, "---\n%s", out)
	return err
}
