package backupverify

import (
	"context"
	"fmt"
	"slices"
	"strings"
)

// DefaultMaxDropPct is how many percent of a table's baseline rows may go by default.
const DefaultMaxDropPct = 10.0

// Severity of a finding. Findings at or above Policy.FailOn fail the check.
type Severity string

// Severities, lowest first.
const (
	SeverityInfo     Severity = "info"
	SeverityLow      Severity = "low"
	SeverityMedium   Severity = "medium"
	SeverityHigh     Severity = "high"
	SeverityCritical Severity = "critical"
)

var severityRank = map[Severity]int{SeverityInfo: 1, SeverityLow: 2, SeverityMedium: 3, SeverityHigh: 4, SeverityCritical: 5}

// Rank orders severities: 1 for info up to 5 for critical, 0 for an unknown one.
func (s Severity) Rank() int { return severityRank[s] }

// Rules: the Finding.Rule of each kind of problem.
const (
	RuleTableMissing      = "table-missing"              // high
	RuleTableExtra        = "table-extra"                // info
	RuleColumnMissing     = "column-missing"             // high
	RuleColumnExtra       = "column-extra"               // info; low when NOT NULL without a default
	RuleColumnType        = "column-type-changed"        // high
	RuleColumnNullability = "column-nullability-changed" // low
	RuleColumnDefault     = "column-default-changed"     // info
	RulePrimaryKey        = "primary-key-changed"        // medium; info when added
	RuleIndexMissing      = "index-missing"              // low
	RuleIndexChanged      = "index-changed"              // low
	RuleIndexExtra        = "index-extra"                // info
	RuleForeignKeyMissing = "foreign-key-missing"        // medium
	RuleForeignKeyChanged = "foreign-key-changed"        // medium
	RuleForeignKeyExtra   = "foreign-key-extra"          // info
	RuleCheckMissing      = "check-missing"              // low
	RuleCheckChanged      = "check-changed"              // low
	RuleCheckExtra        = "check-extra"                // info
	RuleRowsBelowMinimum  = "rows-below-minimum"         // high
	RuleRowsDropped       = "rows-dropped"               // high
	RuleRowsDiffer        = "rows-differ"                // high: restored rows differ from the source's
	RuleChecksumDiffers   = "checksum-differs"           // high: restored content differs
	RuleDumpUnreadable    = "dump-unreadable"            // critical: pg_restore cannot read the dump
	RuleRestoreFailed     = "restore-failed"             // critical: pg_restore stopped with an error
	RuleSourceUnreachable = "source-unreachable"         // info: restore compared with the baseline only
)

// What a finding compares against.
const (
	AgainstBaseline = "baseline"
	AgainstSource   = "source"
	AgainstDump     = "dump"
)

// Finding is one difference or problem, naming the table and column it concerns.
type Finding struct {
	Rule     string   `json:"rule"`
	Severity Severity `json:"severity"`
	Table    string   `json:"table,omitempty"`  // schema.name
	Column   string   `json:"column,omitempty"` // for column rules
	Object   string   `json:"object,omitempty"` // index or constraint name
	Against  string   `json:"against"`          // baseline, source or dump
	Message  string   `json:"message"`
	Expected string   `json:"expected,omitempty"` // the baseline's (or source's) value
	Actual   string   `json:"actual,omitempty"`   // the checked database's value
}

// Policy decides which differences fail a check.
type Policy struct {
	// MinRows: every table must hold at least this many rows; a table's own
	// Table.MinRows in the baseline overrides it. Zero: no minimum.
	MinRows int64 `json:"min_rows"`
	// MaxDropPct: a table may hold at most this many percent fewer rows than in the
	// baseline (0 to 100). DefaultPolicy allows DefaultMaxDropPct.
	MaxDropPct float64 `json:"max_drop_pct"`
	// FailOn: findings of this severity or higher fail the check; empty means medium.
	FailOn Severity `json:"fail_on"`
}

// DefaultPolicy: no minimum row count, at most 10% of rows dropped, medium findings fail.
func DefaultPolicy() Policy {
	return Policy{MaxDropPct: DefaultMaxDropPct, FailOn: SeverityMedium}
}

// Validate reports a policy out of range, wrapping ErrBadPolicy.
func (p Policy) Validate() error {
	switch {
	case p.MinRows < 0:
		return fmt.Errorf("%w: min rows %d must not be negative", ErrBadPolicy, p.MinRows)
	case p.MaxDropPct < 0 || p.MaxDropPct > 100 || p.MaxDropPct != p.MaxDropPct:
		return fmt.Errorf("%w: max drop %v%% must be between 0 and 100", ErrBadPolicy, p.MaxDropPct)
	case p.FailOn != "" && p.FailOn.Rank() == 0:
		return fmt.Errorf("%w: fail-on %q: want info, low, medium, high or critical", ErrBadPolicy, p.FailOn)
	}
	return nil
}

func (p Policy) failOn() Severity {
	if p.FailOn == "" {
		return SeverityMedium
	}
	return p.FailOn
}

// Verify compares a captured database with its baseline: a missing table or column, a
// changed type, fewer rows than the minimum or a drop of more than MaxDropPct are
// problems; additions (a new table, a new nullable column) are noted but pass.
func Verify(live, baseline *Baseline, p Policy) *Report {
	r := newReport(CheckVerify, baseline, p)
	r.Database = live.Database
	r.Findings = diffSchemas(baseline, live, AgainstBaseline)
	r.Findings = append(r.Findings, checkRows(baseline, live, p)...)
	r.Tables = tableResults(baseline, live)
	r.finish()
	return r
}

// VerifyLive captures the database at dsn (CaptureOptions o) and verifies it against
// baseline.
func VerifyLive(ctx context.Context, dsn string, baseline *Baseline, p Policy, o CaptureOptions) (*Report, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	// A baseline's checksums describe the moment of a dump, not a database in use.
	o.Checksums = false
	live, err := Capture(ctx, dsn, o)
	if err != nil {
		return nil, err
	}
	r := Verify(live, baseline, p)
	r.Database = DescribeDSN(dsn)
	return r, nil
}

// diffSchemas lists how got's tables differ from want's.
func diffSchemas(want, got *Baseline, against string) []Finding {
	var fs []Finding
	add := func(f Finding) {
		f.Against = against
		fs = append(fs, f)
	}
	for i := range want.Tables {
		w := &want.Tables[i]
		name := w.QualifiedName()
		g := got.Table(name)
		if g == nil {
			add(Finding{Rule: RuleTableMissing, Severity: SeverityHigh, Table: name,
				Message: fmt.Sprintf("table %s is missing (it is in the %s)", name, against)})
			continue
		}
		diffColumns(w, g, against, add)
		diffKeys(w, g, against, add)
	}
	for i := range got.Tables {
		name := got.Tables[i].QualifiedName()
		if want.Table(name) == nil {
			add(Finding{Rule: RuleTableExtra, Severity: SeverityInfo, Table: name,
				Message: fmt.Sprintf("table %s is new (not in the %s)", name, against)})
		}
	}
	return fs
}

func diffColumns(w, g *Table, against string, add func(Finding)) {
	name := w.QualifiedName()
	gotCols := map[string]*Column{}
	for i := range g.Columns {
		gotCols[g.Columns[i].Name] = &g.Columns[i]
	}
	wantCols := map[string]bool{}
	for _, wc := range w.Columns {
		wantCols[wc.Name] = true
		col := qualify(w.Schema, w.Name, wc.Name)
		gc := gotCols[wc.Name]
		if gc == nil {
			add(Finding{Rule: RuleColumnMissing, Severity: SeverityHigh, Table: name, Column: wc.Name, Expected: wc.Type,
				Message: fmt.Sprintf("column %s is missing (%s in the %s)", col, wc.Type, against)})
			continue
		}
		if gc.Type != wc.Type {
			add(Finding{Rule: RuleColumnType, Severity: SeverityHigh, Table: name, Column: wc.Name, Expected: wc.Type, Actual: gc.Type,
				Message: fmt.Sprintf("column %s changed type from %s to %s", col, wc.Type, gc.Type)})
		}
		if gc.Nullable != wc.Nullable {
			became := "NOT NULL"
			if gc.Nullable {
				became = "nullable"
			}
			add(Finding{Rule: RuleColumnNullability, Severity: SeverityLow, Table: name, Column: wc.Name,
				Expected: nullability(wc.Nullable), Actual: nullability(gc.Nullable),
				Message: fmt.Sprintf("column %s became %s", col, became)})
		}
		if gc.Default != wc.Default || gc.Identity != wc.Identity || gc.Generated != wc.Generated {
			add(Finding{Rule: RuleColumnDefault, Severity: SeverityInfo, Table: name, Column: wc.Name,
				Expected: defaultText(wc), Actual: defaultText(*gc),
				Message: fmt.Sprintf("column %s default changed from %s to %s", col, defaultText(wc), defaultText(*gc))})
		}
	}
	for _, gc := range g.Columns {
		if wantCols[gc.Name] {
			continue
		}
		col := qualify(w.Schema, w.Name, gc.Name)
		f := Finding{Rule: RuleColumnExtra, Severity: SeverityInfo, Table: name, Column: gc.Name, Actual: gc.Type,
			Message: fmt.Sprintf("column %s is new (%s, %s)", col, gc.Type, nullability(gc.Nullable))}
		if !gc.Nullable && gc.Default == "" && gc.Identity == "" && gc.Generated == "" {
			f.Severity = SeverityLow
			f.Message = fmt.Sprintf("column %s is new, NOT NULL without a default (%s): inserts that do not set it fail", col, gc.Type)
		}
		add(f)
	}
}

func nullability(nullable bool) string {
	if nullable {
		return "nullable"
	}
	return "NOT NULL"
}

func defaultText(c Column) string {
	switch {
	case c.Generated != "":
		return "GENERATED ALWAYS AS (" + c.Default + ") " + strings.ToUpper(c.Generated)
	case c.Identity != "":
		return "GENERATED " + strings.ToUpper(c.Identity) + " AS IDENTITY"
	case c.Default == "":
		return "none"
	}
	return c.Default
}

func diffKeys(w, g *Table, against string, add func(Finding)) {
	name := w.QualifiedName()
	switch wk, gk := strings.Join(w.PrimaryKey, ", "), strings.Join(g.PrimaryKey, ", "); {
	case wk == gk:
	case gk == "":
		add(Finding{Rule: RulePrimaryKey, Severity: SeverityMedium, Table: name, Expected: wk,
			Message: fmt.Sprintf("primary key of %s (%s) is missing", name, wk)})
	case wk == "":
		add(Finding{Rule: RulePrimaryKey, Severity: SeverityInfo, Table: name, Actual: gk,
			Message: fmt.Sprintf("primary key of %s (%s) is new", name, gk)})
	default:
		add(Finding{Rule: RulePrimaryKey, Severity: SeverityMedium, Table: name, Expected: wk, Actual: gk,
			Message: fmt.Sprintf("primary key of %s changed from (%s) to (%s)", name, wk, gk)})
	}
	diffNamed(name, "index", indexDefs(w), indexDefs(g), against,
		[3]string{RuleIndexMissing, RuleIndexChanged, RuleIndexExtra}, [3]Severity{SeverityLow, SeverityLow, SeverityInfo}, add)
	diffNamed(name, "foreign key", fkDefs(w), fkDefs(g), against,
		[3]string{RuleForeignKeyMissing, RuleForeignKeyChanged, RuleForeignKeyExtra}, [3]Severity{SeverityMedium, SeverityMedium, SeverityInfo}, add)
	diffNamed(name, "check", checkDefs(w), checkDefs(g), against,
		[3]string{RuleCheckMissing, RuleCheckChanged, RuleCheckExtra}, [3]Severity{SeverityLow, SeverityLow, SeverityInfo}, add)
}

// diffNamed compares named definitions: rules and sevs are for missing, changed, extra.
func diffNamed(table, what string, want, got map[string]string, against string, rules [3]string, sevs [3]Severity, add func(Finding)) {
	for _, n := range sortedKeys(want) {
		wd := want[n]
		gd, ok := got[n]
		switch {
		case !ok:
			add(Finding{Rule: rules[0], Severity: sevs[0], Table: table, Object: n, Expected: wd,
				Message: fmt.Sprintf("%s %s on %s is missing (%s in the %s)", what, n, table, wd, against)})
		case gd != wd:
			add(Finding{Rule: rules[1], Severity: sevs[1], Table: table, Object: n, Expected: wd, Actual: gd,
				Message: fmt.Sprintf("%s %s on %s changed from %s to %s", what, n, table, wd, gd)})
		}
	}
	for _, n := range sortedKeys(got) {
		if _, ok := want[n]; !ok {
			add(Finding{Rule: rules[2], Severity: sevs[2], Table: table, Object: n, Actual: got[n],
				Message: fmt.Sprintf("%s %s on %s is new (%s)", what, n, table, got[n])})
		}
	}
}

func indexDefs(t *Table) map[string]string {
	m := map[string]string{}
	for _, ix := range t.Indexes {
		m[ix.Name] = ix.Definition
	}
	return m
}

func fkDefs(t *Table) map[string]string {
	m := map[string]string{}
	for _, fk := range t.ForeignKeys {
		d := fmt.Sprintf("(%s) -> %s(%s)", strings.Join(fk.Columns, ", "), fk.ReferencesTable, strings.Join(fk.ReferencesColumns, ", "))
		if fk.OnUpdate != "" {
			d += " ON UPDATE " + fk.OnUpdate
		}
		if fk.OnDelete != "" {
			d += " ON DELETE " + fk.OnDelete
		}
		m[fk.Name] = d
	}
	return m
}

func checkDefs(t *Table) map[string]string {
	m := map[string]string{}
	for _, c := range t.Checks {
		m[c.Name] = c.Definition
	}
	return m
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// checkRows applies the policy's row rules to the tables in both.
func checkRows(baseline, live *Baseline, p Policy) []Finding {
	var fs []Finding
	for i := range baseline.Tables {
		b := &baseline.Tables[i]
		name := b.QualifiedName()
		l := live.Table(name)
		if l == nil {
			continue
		}
		est := ""
		if l.RowsEstimated {
			est = " (estimated)"
		}
		minRows := p.MinRows
		if b.MinRows > 0 {
			minRows = b.MinRows
		}
		if l.Rows < minRows {
			fs = append(fs, Finding{Rule: RuleRowsBelowMinimum, Severity: SeverityHigh, Table: name, Against: AgainstBaseline,
				Expected: fmt.Sprintf(">= %d", minRows), Actual: fmt.Sprint(l.Rows),
				Message: fmt.Sprintf("table %s has %d rows%s, below the minimum of %d", name, l.Rows, est, minRows)})
		}
		if b.Rows > 0 && l.Rows < b.Rows {
			drop := 100 * float64(b.Rows-l.Rows) / float64(b.Rows)
			if drop > p.MaxDropPct {
				fs = append(fs, Finding{Rule: RuleRowsDropped, Severity: SeverityHigh, Table: name, Against: AgainstBaseline,
					Expected: fmt.Sprint(b.Rows), Actual: fmt.Sprint(l.Rows),
					Message: fmt.Sprintf("table %s has %d rows%s, %.1f%% fewer than the baseline's %d (at most %g%% may go)",
						name, l.Rows, est, drop, b.Rows, p.MaxDropPct)})
			}
		}
	}
	return fs
}
