package backupverify

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// The report format; see the package documentation.
const (
	ReportFormat  = "sluice.backupverify.report"
	ReportVersion = 1
)

// Checks a Report describes.
const (
	CheckVerify        = "verify"
	CheckRestoreVerify = "restore-verify"
)

// Report is the outcome of Verify or RestoreVerify. Its JSON form is the stage artifact;
// WriteText renders it for people.
type Report struct {
	Format  string `json:"format"`
	Version int    `json:"version"`
	Check   string `json:"check"`
	Passed  bool   `json:"passed"`
	// Summary is one line: what passed, or the first problem and how many more.
	Summary string `json:"summary"`
	// Database is what was checked: the live database, or the restored one.
	Database string        `json:"database"`
	Baseline *BaselineInfo `json:"baseline,omitempty"`
	Policy   Policy        `json:"policy"`
	Restore  *RestoreInfo  `json:"restore,omitempty"`
	Tables   []TableResult `json:"tables"`
	Findings []Finding     `json:"findings"`
}

// BaselineInfo identifies the baseline a report compares with.
type BaselineInfo struct {
	Database   string    `json:"database"`
	CapturedAt time.Time `json:"captured_at"`
	Tables     int       `json:"tables"`
}

// RestoreInfo describes a restore-verify run; times are in seconds.
type RestoreInfo struct {
	Dump           string  `json:"dump"`
	DumpBytes      int64   `json:"dump_bytes"`
	Target         string  `json:"target"`
	Source         string  `json:"source,omitempty"` // the source compared with, if any
	DumpSeconds    float64 `json:"dump_seconds"`     // pg_dump, when Sluice took the dump
	ScratchSeconds float64 `json:"scratch_seconds"`  // starting the throwaway cluster, creating the database
	RestoreSeconds float64 `json:"restore_seconds"`  // pg_restore
	VerifySeconds  float64 `json:"verify_seconds"`   // everything else: what the checks add to a restore
	TotalSeconds   float64 `json:"total_seconds"`
}

// TableResult is one table's numbers. Counts absent from a side are omitted.
type TableResult struct {
	Table          string `json:"table"`
	Status         string `json:"status"` // ok, problem, missing or new
	BaselineRows   *int64 `json:"baseline_rows,omitempty"`
	Rows           *int64 `json:"rows,omitempty"`
	RowsEstimated  bool   `json:"rows_estimated,omitempty"`
	SourceRows     *int64 `json:"source_rows,omitempty"`
	Checksum       string `json:"checksum,omitempty"`
	SourceChecksum string `json:"source_checksum,omitempty"`
}

func newReport(check string, baseline *Baseline, p Policy) *Report {
	r := &Report{Format: ReportFormat, Version: ReportVersion, Check: check, Policy: p}
	r.Policy.FailOn = p.failOn()
	if baseline != nil {
		r.Baseline = &BaselineInfo{Database: baseline.Database, CapturedAt: baseline.CapturedAt, Tables: len(baseline.Tables)}
	}
	return r
}

// tableResults lists every table of either side, in name order.
func tableResults(baseline, got *Baseline) []TableResult {
	seen := map[string]bool{}
	var names []string
	for _, b := range []*Baseline{baseline, got} {
		if b == nil {
			continue
		}
		for i := range b.Tables {
			if n := b.Tables[i].QualifiedName(); !seen[n] {
				seen[n] = true
				names = append(names, n)
			}
		}
	}
	slices.Sort(names)
	res := make([]TableResult, 0, len(names))
	for _, n := range names {
		tr := TableResult{Table: n}
		if baseline != nil {
			if t := baseline.Table(n); t != nil {
				tr.BaselineRows = ptr(t.Rows)
			}
		}
		if t := got.Table(n); t != nil {
			tr.Rows, tr.RowsEstimated, tr.Checksum = ptr(t.Rows), t.RowsEstimated, t.Checksum
		}
		res = append(res, tr)
	}
	return res
}

func ptr[T any](v T) *T { return &v }

// finish sorts the findings, most severe first, and sets Passed, Summary and each
// table's Status.
func (r *Report) finish() {
	if r.Findings == nil {
		r.Findings = []Finding{}
	}
	if r.Tables == nil {
		r.Tables = []TableResult{}
	}
	slices.SortStableFunc(r.Findings, func(a, b Finding) int {
		return cmpJoin(b.Severity.Rank()-a.Severity.Rank(), strings.Compare(a.Table, b.Table),
			strings.Compare(a.Column, b.Column), strings.Compare(a.Object, b.Object),
			strings.Compare(a.Rule, b.Rule), strings.Compare(a.Against, b.Against))
	})
	failOn := r.Policy.failOn().Rank()
	var problems []Finding
	problemTables := map[string]bool{}
	for _, f := range r.Findings {
		if f.Severity.Rank() >= failOn {
			problems = append(problems, f)
			problemTables[f.Table] = true
		}
	}
	for i := range r.Tables {
		t := &r.Tables[i]
		switch {
		case t.Rows == nil && t.SourceRows == nil:
			t.Status = "missing"
		case problemTables[t.Table]:
			t.Status = "problem"
		case t.BaselineRows == nil && r.Baseline != nil:
			t.Status = "new"
		default:
			t.Status = "ok"
		}
	}
	r.Passed = len(problems) == 0
	switch {
	case r.Passed && r.Check == CheckRestoreVerify:
		r.Summary = fmt.Sprintf("the dump restores: %s", plural(len(r.Tables), "table", "tables")+" checked")
	case r.Passed:
		r.Summary = fmt.Sprintf("%s match the baseline", plural(len(r.Tables), "table", "tables"))
	default:
		r.Summary = fmt.Sprintf("%s: %s", plural(len(problems), "problem", "problems"), problems[0].Message)
		if len(problems) > 1 {
			r.Summary += fmt.Sprintf(" (and %d more)", len(problems)-1)
		}
	}
	if notes := len(r.Findings) - len(problems); r.Passed && notes > 0 {
		r.Summary += fmt.Sprintf(", %s", plural(notes, "note", "notes"))
	}
}

// Problems are the findings that fail the check.
func (r *Report) Problems() []Finding {
	var ps []Finding
	for _, f := range r.Findings {
		if f.Severity.Rank() >= r.Policy.failOn().Rank() {
			ps = append(ps, f)
		}
	}
	return ps
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// EncodeJSON writes r as indented JSON.
func (r *Report) EncodeJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(r); err != nil {
		return fmt.Errorf("encode report: %w", err)
	}
	return nil
}

// JSON is EncodeJSON into a byte slice.
func (r *Report) JSON() []byte {
	var b bytes.Buffer
	// Encoding plain structs of strings and numbers cannot fail.
	_ = r.EncodeJSON(&b)
	return b.Bytes()
}

// WriteText renders r for a terminal or a log: the verdict, what was compared, the
// findings most severe first, then every table's numbers.
func (r *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	verdict := "PASSED"
	if !r.Passed {
		verdict = "FAILED"
	}
	fmt.Fprintf(&b, "%s %s: %s\n", r.Check, verdict, r.Summary)
	if r.Restore == nil {
		fmt.Fprintf(&b, "  database: %s\n", r.Database)
	}
	if r.Baseline != nil {
		fmt.Fprintf(&b, "  baseline: %s captured %s, %s\n", r.Baseline.Database,
			r.Baseline.CapturedAt.UTC().Format(time.RFC3339), plural(r.Baseline.Tables, "table", "tables"))
	}
	if ri := r.Restore; ri != nil {
		fmt.Fprintf(&b, "  dump:     %s (%s)\n", ri.Dump, byteSize(ri.DumpBytes))
		if ri.Target != "" {
			fmt.Fprintf(&b, "  restored: %s\n", ri.Target)
		}
		if ri.Source != "" {
			fmt.Fprintf(&b, "  source:   %s\n", ri.Source)
		}
		fmt.Fprintf(&b, "  time:     dump %.1fs, scratch %.1fs, restore %.1fs, verify %.1fs, total %.1fs\n",
			ri.DumpSeconds, ri.ScratchSeconds, ri.RestoreSeconds, ri.VerifySeconds, ri.TotalSeconds)
	}
	fmt.Fprintf(&b, "  policy:   min rows %d, max drop %g%%, fail on %s\n", r.Policy.MinRows, r.Policy.MaxDropPct, r.Policy.failOn())

	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	if len(r.Findings) > 0 {
		fmt.Fprintf(tw, "\nSEVERITY\tRULE\tAGAINST\tFINDING\n")
		for _, f := range r.Findings {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", f.Severity, f.Rule, f.Against, f.Message)
		}
	}
	restore := r.Check == CheckRestoreVerify
	if len(r.Tables) > 0 {
		fmt.Fprintf(tw, "\nTABLE\tSTATUS\tBASELINE ROWS\tROWS")
		if restore {
			fmt.Fprintf(tw, "\tSOURCE ROWS\tSOURCE CHECKSUM")
		}
		fmt.Fprintln(tw)
		for _, t := range r.Tables {
			rows := count(t.Rows)
			if t.RowsEstimated {
				rows = "~" + rows
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s", t.Table, t.Status, count(t.BaselineRows), rows)
			if restore {
				fmt.Fprintf(tw, "\t%s\t%s", count(t.SourceRows), checksumText(t))
			}
			fmt.Fprintln(tw)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func count(n *int64) string {
	if n == nil {
		return "-"
	}
	return fmt.Sprint(*n)
}

// checksumText says whether the restored content matches, without printing the sums.
func checksumText(t TableResult) string {
	switch {
	case t.Checksum == "" || t.SourceChecksum == "":
		return "-"
	case t.Checksum == t.SourceChecksum:
		return "match"
	}
	return "DIFFERS"
}

func byteSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
