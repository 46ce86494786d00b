// Command checks holds the quickstart pipeline's checks that neither a standard tool nor a
// Sluice engine covers without a database (governance is the static stage's governance:
// block; `sluice demo` verifies a real database's backup):
//
//	checks baseline FILE    the backup baseline is well formed
//	checks release DIR      VERSION is semver and CHANGELOG.md describes it
//
// It exits 1 when a check finds a problem and 2 on bad usage.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: checks baseline FILE | release DIR")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "baseline":
		err = baseline(os.Args[2])
	case "release":
		err = release(os.Args[2])
	default:
		fmt.Fprintf(os.Stderr, "checks: unknown check %q\n", os.Args[1])
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// Baseline is the expected shape of the example database that backups are verified against.
type Baseline struct {
	Database string  `json:"database"`
	Tables   []Table `json:"tables"`
}

type Table struct {
	Name    string   `json:"name"`
	Columns []Column `json:"columns"`
	MinRows int64    `json:"min_rows"`
}

type Column struct {
	Name     string `json:"name"`
	Type     string `json:"type"`
	Nullable bool   `json:"nullable"`
}

func baseline(file string) error {
	data, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("baseline: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var b Baseline
	if err := dec.Decode(&b); err != nil {
		return fmt.Errorf("baseline %s: %w", file, err)
	}
	var problems []error
	if b.Database == "" {
		problems = append(problems, errors.New("database: empty"))
	}
	if len(b.Tables) == 0 {
		problems = append(problems, errors.New("tables: none"))
	}
	tables := map[string]bool{}
	columns := 0
	for i, t := range b.Tables {
		where := fmt.Sprintf("tables[%d] %q", i, t.Name)
		switch {
		case t.Name == "":
			problems = append(problems, fmt.Errorf("%s: empty name", where))
		case tables[t.Name]:
			problems = append(problems, fmt.Errorf("%s: duplicate table", where))
		}
		tables[t.Name] = true
		if t.MinRows < 0 {
			problems = append(problems, fmt.Errorf("%s: min_rows %d is negative", where, t.MinRows))
		}
		if len(t.Columns) == 0 {
			problems = append(problems, fmt.Errorf("%s: no columns", where))
		}
		seen := map[string]bool{}
		for j, c := range t.Columns {
			if c.Name == "" || c.Type == "" || seen[c.Name] {
				problems = append(problems, fmt.Errorf("%s: columns[%d] %q: needs a unique name and a type", where, j, c.Name))
			}
			seen[c.Name] = true
			columns++
		}
	}
	if err := errors.Join(problems...); err != nil {
		return fmt.Errorf("baseline %s:\n%w", file, err)
	}
	fmt.Printf("baseline %s: database %s, %d tables, %d columns\n", file, b.Database, len(b.Tables), columns)
	return nil
}

var semver = regexp.MustCompile(`^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?$`)

func release(dir string) error {
	raw, err := os.ReadFile(filepath.Join(dir, "VERSION"))
	if err != nil {
		return fmt.Errorf("release: %w", err)
	}
	version := strings.TrimSpace(string(raw))
	if !semver.MatchString(version) {
		return fmt.Errorf("release: VERSION %q is not a semantic version", version)
	}
	changelog, err := os.ReadFile(filepath.Join(dir, "CHANGELOG.md"))
	if err != nil {
		return fmt.Errorf("release: %w", err)
	}
	heading := "## " + version
	for line := range strings.Lines(string(changelog)) {
		if strings.TrimSpace(line) == heading || strings.HasPrefix(line, heading+" ") {
			fmt.Printf("release %s: ready to deploy\n", version)
			return nil
		}
	}
	return fmt.Errorf("release: CHANGELOG.md has no %q section for VERSION %s", heading, version)
}
